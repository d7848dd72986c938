#!/usr/bin/env python3
"""Writes the person-name gazetteers of `engine/src/detect/tables/` (issue 14).

Sources: the US Census Bureau's 1990 name frequency files (public domain: `dist.male.first`,
`dist.female.first`, `dist.all.last`), as shipped in the PyPI package `names` 0.3.0 (pinned in
requirements.txt): every first name, and the surnames of frequency rank 1..SURNAMES. Plus the
first names of Faker's providers for the European locales of FAKER_LOCALES (Faker 40.54.0, MIT;
folded to ASCII like the detector's look-up key), because the census lists are American.

Held out: among the census names rarer than rank HOLDOUT_FROM (first names) / HOLDOUT_FROM_LAST
(surnames), one in ten (crc32 of the name mod 10 == HOLDOUT) stays out of the tables, so that
the corpus can score names the detector has never seen (`held_out()`, used by people.py). The
common names stay in: leaving `Lisa` out of a shipped gazetteer would only make it worse.

Format ("compressed"): sorted, lower case, one name per line, front-coded: each line is one
character giving how many leading bytes it shares with the previous name ('0'..'9', 'a'..'z' for
10..35) followed by the rest of the name. `detect/names.rs` decodes it once per detector.

    scripts/corpus/gazetteer.py [--check]
"""

import importlib
import os
import sys
import unicodedata
import zlib

import names as names_pkg

SURNAMES = 30000
HOLDOUT = 3
HOLDOUT_FROM = 1000
HOLDOUT_FROM_LAST = 3000
FAKER_LOCALES = ["en_GB", "de_DE", "de_AT", "de_CH", "fr_FR", "es_ES", "it_IT", "nl_NL", "pt_BR", "pt_PT"]
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "engine", "src", "detect", "tables")
DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def census(file):
    path = os.path.join(os.path.dirname(names_pkg.__file__), file)
    with open(path, encoding="ascii") as f:
        return [line.split()[0].lower() for line in f if line.strip()]


def held(name):
    return zlib.crc32(name.encode()) % 10 == HOLDOUT


def census_first():
    """Census first names with their best rank in either file."""
    rank = {}
    for file in ("dist.male.first", "dist.female.first"):
        for k, n in enumerate(census(file)):
            rank[n] = min(rank.get(n, k), k)
    return rank


def held_first():
    return sorted(n for n, k in census_first().items() if k >= HOLDOUT_FROM and held(n))


def held_last():
    return sorted(n for k, n in enumerate(census("dist.all.last")[:SURNAMES]) if k >= HOLDOUT_FROM_LAST and held(n))


def ascii_key(name):
    """The detector's look-up key (detect/extra.rs `key`): accents dropped, lower case."""
    name = name.replace("ß", "ss").replace("ł", "l").replace("Ł", "L").replace("ø", "o").replace("Ø", "O")
    name = name.replace("đ", "d").replace("ı", "i").replace("'", "").replace("’", "")
    s = "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c)).lower()
    return s if s.isascii() and s.isalpha() else None


def faker_first():
    out = set()
    for loc in FAKER_LOCALES:
        p = importlib.import_module(f"faker.providers.person.{loc}").Provider
        for attr in ("first_names", "first_names_male", "first_names_female"):
            for n in getattr(p, attr, ()) or ():
                for part in n.replace("-", " ").split():
                    k = ascii_key(part)
                    if k and len(k) > 1:
                        out.add(k)
    return out


def first_names():
    held = set(held_first())
    return sorted((set(census_first()) | faker_first()) - held)


def surnames():
    held = set(held_last())
    return sorted(set(census("dist.all.last")[:SURNAMES]) - held)


def held_out():
    """(first names, surnames) left out of the tables, title case, in a stable order."""
    return ([n.title() for n in held_first()], [n.title() for n in held_last()])


def front_coded(words):
    out, prev = [], ""
    for w in words:
        k = 0
        while k < min(len(w), len(prev), 35) and w[k] == prev[k]:
            k += 1
        out.append(DIGITS[k] + w[k:])
        prev = w
    return "\n".join(out) + "\n"


def main():
    check = "--check" in sys.argv[1:]
    tables = {
        "first_names.txt": front_coded(first_names()),
        "surnames.txt": front_coded(surnames()),
    }
    bad = []
    for name, text in tables.items():
        path = os.path.join(OUT, name)
        if check:
            with open(path, encoding="ascii") as f:
                if f.read() != text:
                    bad.append(name)
        else:
            with open(path, "w", encoding="ascii") as f:
                f.write(text)
            print(f"{path}: {text.count(chr(10))} names, {len(text)} bytes")
    if bad:
        sys.exit(f"gazetteer tables differ from their source: {', '.join(bad)} (run scripts/corpus/gazetteer.py)")


if __name__ == "__main__":
    main()
