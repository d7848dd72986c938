#!/usr/bin/env python3
"""Installed size of Python distributions with everything they require, as pip installed them
(sum of the files each distribution's RECORD lists). Prints JSON {name: megabytes}.

Usage: sizes.py NAME=DIST[,DIST...] [...]   e.g. presidio=presidio-analyzer tork=tork-governance
"""

import importlib.metadata as md
import json
import os
import re
import sys

from packaging.requirements import Requirement


def closure(dist_name):
    seen, todo = {}, [dist_name]
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in seen:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        seen[name] = dist
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen.values()


def size(dist):
    total = 0
    for f in dist.files or []:
        path = dist.locate_file(f)
        if os.path.isfile(path):
            total += os.path.getsize(path)
    return total


def main():
    out = {}
    for arg in sys.argv[1:]:
        name, dists = arg.split("=", 1)
        # Several distributions (a library and its model) share what they both require once.
        union = {d.metadata["Name"].lower(): d for dist in dists.split(",") for d in closure(dist)}
        out[name] = round(sum(size(d) for d in union.values()) / 1e6, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
