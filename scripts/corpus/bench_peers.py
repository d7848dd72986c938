#!/usr/bin/env python3
"""Side-by-side benchmark of Warden, Presidio and tork-governance on Warden's labeled corpus.

Every engine runs as a child process that speaks `warden detect`'s JSONL protocol (Warden itself,
or peer_worker.py for the Python peers), so all three are driven, timed and scored the same way.

Scoring (documented in docs/benchmarks.md):
  * Only the nine types of SPEC §4 are scored; each engine's labels are mapped onto them
    (PEER_TYPES below). Labels that map to none (Presidio's URL or DATE_TIME, tork's
    bank_account, ...) are not scored, and are listed separately for hard negatives.
  * A predicted span matches a labeled span when the type is the same and the two spans are
    identical after trimming blanks, quotes, brackets and a leading `+` from both ends
    (TRIM below). So `415) 555-0132` for `(415) 555-0132` and `44 20 7946 0958` for
    `+44 20 7946 0958` count, for every engine alike; a span that leaves any letter or digit
    of the value out, or takes in more, does not. Each labeled span is matched at most once.
  * Per type: precision = TP / (TP + FP), recall = TP / (TP + FN), F1 their harmonic mean,
    over all documents (labeled.jsonl and prose.jsonl). A false positive on a hard-negative
    document also counts against that type's precision.

Speed (prose.jsonl: ~1 MB of ~1 KB paragraphs with sparse PII):
  * start-up: spawn the process and wait for its answer to one tiny document (median of 3).
  * throughput: stream every prose document through one warm process (one write from a thread,
    replies read in 1 MiB chunks); MB/s = UTF-8 bytes of text / wall time from the first write
    to the last reply. Median of --repeat runs.
  * latency: one request at a time (write one document, wait for its reply) over the first
    --latency-docs prose documents; the mean per document, as a caller on the pipe sees it.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

from generate import TYPES  # one list of Warden's types, shared with the corpus generator

# The opt-in types (issue 14): scored only on people.jsonl / people_heldout.jsonl, which label
# them, and only they are scored there (the other corpora have unlabeled names in their text).
EXTRA_TYPES = ["person", "street_address"]
PRESIDIO = {
    "EMAIL_ADDRESS": "email_address",
    "US_SSN": "us_ssn",
    "PHONE_NUMBER": "phone_number",
    "CREDIT_CARD": "credit_card",
    "IP_ADDRESS": "ip_address",
    "IBAN_CODE": "iban_code",
}
PEER_TYPES = {
    "warden": {t: t for t in TYPES + EXTRA_TYPES},
    "presidio": PRESIDIO,
    # NER adds PERSON and LOCATION; LOCATION is the closest it has to a street address.
    "presidio_spacy": {**PRESIDIO, "PERSON": "person", "LOCATION": "street_address"},
    "datafog": {
        "EMAIL": "email_address",
        "SSN": "us_ssn",
        "PHONE": "phone_number",
        "CREDIT_CARD": "credit_card",
        "IP_ADDRESS": "ip_address",
        "API_KEY": "api_key",
        "JWT": "jwt_token",
        "DE_IBAN": "iban_code",
        "PERSON": "person",
    },
    "tork": {
        "email": "email_address",
        "ssn": "us_ssn",
        "phone_us": "phone_number",
        "phone_eu": "phone_number",
        "phone_au": "phone_number",
        "phone_generic": "phone_number",
        "credit_card": "credit_card",
        "ip_address": "ip_address",
        "ipv6_address": "ip_address",
        "iban": "iban_code",
    },
}

TRIM = set(" \t\r\n+()[]<>\"'")


def trim(text, s, e):
    while s < e and text[s] in TRIM:
        s += 1
    while e > s and text[e - 1] in TRIM:
        e -= 1
    return s, e


def load(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


class Engine:
    def __init__(self, name, argv, env=None):
        self.name = name
        self.argv = argv
        self.env = env

    def spawn(self):
        return subprocess.Popen(
            self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=self.env, bufsize=0
        )


def request(doc):
    return (json.dumps({"id": doc["id"], "text": doc["text"]}, ensure_ascii=False) + "\n").encode()


def stream(proc, docs):
    """Writes every document (one write, from a thread) and reads the replies in large chunks, so
    the driver adds next to nothing per document; returns (reply lines, seconds)."""
    payload = b"".join(request(d) for d in docs)
    fd = proc.stdout.fileno()

    def writer():
        proc.stdin.write(payload)
        proc.stdin.flush()

    t = threading.Thread(target=writer)
    buf = bytearray()
    start = time.perf_counter()
    t.start()
    lines = 0
    while lines < len(docs):
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            raise SystemExit("engine exited early")
        buf += chunk
        lines += chunk.count(b"\n")
    elapsed = time.perf_counter() - start
    t.join()
    return buf.decode().splitlines(), elapsed


def read_line(proc):
    """One reply line, read with os.read (the pipe is unbuffered; readline() would issue one
    system call per byte). Replies come one at a time here, so nothing is read past the line."""
    fd = proc.stdout.fileno()
    buf = bytearray()
    while not buf.endswith(b"\n"):
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            raise SystemExit("engine exited early")
        buf += chunk
    return bytes(buf)


def finish(proc):
    proc.stdin.close()
    proc.stdout.read()
    proc.wait()


def startup(engine, runs=3):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        p = engine.spawn()
        p.stdin.write(request({"id": "warmup", "text": "hello"}))
        p.stdin.flush()
        read_line(p)
        times.append(time.perf_counter() - start)
        finish(p)
    return statistics.median(times)


def run_quality(engine, docs):
    p = engine.spawn()
    lines, _ = stream(p, docs)
    finish(p)
    replies = {}
    for line in lines:
        r = json.loads(line)
        if "error" in r:
            raise SystemExit(f"{engine.name}: {r['error']}")
        replies[r["id"]] = r["entities"]
    return replies


def cpu_seconds(pid):
    """CPU time of a live process: the scheduler's nanosecond run time of each of its threads
    (/proc/PID/task/*/schedstat), or else user + system time from /proc/PID/stat, which counts in
    clock ticks (10 ms: a whole 1 MB pass of a fast engine is one to three ticks)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
        total = 0
        for t in tasks:
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                total += int(f.read().split()[0])
        return total / 1e9
    except (OSError, ValueError, IndexError):
        pass
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_throughput(engine, docs, repeat):
    total = sum(len(d["text"].encode()) for d in docs)
    runs, cpu = [], []
    for _ in range(repeat):
        p = engine.spawn()
        stream(p, docs[:3])  # warm-up: imports, lazy initialisation, caches
        before = cpu_seconds(p.pid)
        _, elapsed = stream(p, docs)
        cpu.append(cpu_seconds(p.pid) - before)
        finish(p)
        runs.append(elapsed)
    med = statistics.median(runs)
    cpu_med = statistics.median(cpu)
    return {"bytes": total, "docs": len(docs), "seconds": runs, "cpu_seconds": cpu, "mb_per_s": total / med / 1e6,
            "mb_per_cpu_s": total / max(cpu_med, 1e-6) / 1e6}


def run_latency(engine, docs):
    p = engine.spawn()
    stream(p, docs[:3])
    times = []
    for d in docs:
        req = request(d)
        start = time.perf_counter()
        p.stdin.write(req)
        p.stdin.flush()
        read_line(p)
        times.append(time.perf_counter() - start)
    finish(p)
    mean_bytes = sum(len(d["text"].encode()) for d in docs) / len(docs)
    return {"mean_ms": statistics.mean(times) * 1e3, "median_ms": statistics.median(times) * 1e3, "doc_bytes": mean_bytes}


def score(engine_name, docs, replies, kinds=TYPES):
    """Scores the types `kinds` (predictions of other types are left out)."""
    mapping = {k: v for k, v in PEER_TYPES[engine_name].items() if v in kinds}
    per = {t: {"tp": 0, "fp": 0, "fn": 0} for t in kinds}
    neg_fp = {}
    neg_other = {}
    errors = []
    for d in docs:
        text = d["text"]
        gold = {}
        for g in d["entities"]:
            if g["type"] in kinds:
                gold[(g["type"], *trim(text, g["start"], g["end"]))] = g
        seen = set()
        negative = d["group"].startswith("negative:")
        for e in replies.get(d["id"], []):
            kind = mapping.get(e["type"])
            if kind is None:
                if negative and e["type"] not in PEER_TYPES[engine_name]:
                    neg_other[d["group"]] = neg_other.get(d["group"], 0) + 1
                continue
            key = (kind, *trim(text, e["start"], e["end"]))
            if key in seen:
                continue
            seen.add(key)
            if key in gold:
                per[kind]["tp"] += 1
                del gold[key]
            else:
                per[kind]["fp"] += 1
                if negative:
                    neg_fp[d["group"]] = neg_fp.get(d["group"], 0) + 1
                errors.append(("FP", kind, d["id"], text[e["start"] : e["end"]], text))
        for (kind, _, _), g in gold.items():
            per[kind]["fn"] += 1
            errors.append(("FN", kind, d["id"], text[g["start"] : g["end"]], text))
    for t, c in per.items():
        p = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else None
        r = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else None
        c["precision"], c["recall"] = p, r
        c["f1"] = 2 * p * r / (p + r) if p and r else 0.0
    return {"types": per, "neg_fp": neg_fp, "neg_other": neg_other, "errors": errors}


def print_others(res, names, out):
    """Per-type P / R / F1 on others.jsonl (text written by others: phones, cards, e-mails)."""
    kinds = ["phone_number", "credit_card", "email_address"]
    print("\n### Text written by others (others.jsonl): precision / recall / F1\n", file=out)
    print("| type | " + " | ".join(names) + " |", file=out)
    print("|---|" + "---|" * len(names), file=out)
    for k in kinds:
        cells = []
        for n in names:
            c = res[n]["others"]["types"][k]
            cells.append(f"{fmt(c['precision'])} / {fmt(c['recall'])} / {c['f1']:.2f}")
        print(f"| {k} | " + " | ".join(cells) + " |", file=out)
    fps = [f"{n} {sum(res[n]['others']['neg_fp'].values())}" for n in names]
    print(f"\nFalse positives on its hard negatives: {', '.join(fps)}.", file=out)


def print_people(res, names, out):
    """Person names and street addresses: people.jsonl, the held-out names, hard negatives."""
    w = out.write
    w("\n### Person names and street addresses (people.jsonl, people_heldout.jsonl): P / R / F1\n\n")
    w("| set | type | labels | " + " | ".join(names) + " |\n")
    w("|---|---|---:|" + "---|" * len(names) + "\n")
    rows = [("people.jsonl", "people", "person"), ("people.jsonl", "people", "street_address"),
            ("held-out census names", "heldout:census", "person"), ("names of other origins", "heldout:origin", "person")]
    for label, key, kind in rows:
        cells = []
        n_labels = None
        for n in names:
            c = res[n][key]["types"][kind]
            n_labels = c["tp"] + c["fn"]
            cells.append("no detector" if not supported(n, kind) else
                         f"{fmt(c['precision'])} / {fmt(c['recall'])} / **{c['f1']:.2f}**")
        w(f"| {label} | {kind} | {n_labels} | " + " | ".join(cells) + " |\n")
    fps = [f"{n} {sum(res[n]['people']['neg_fp'].values())}" for n in names]
    w(f"\nFalse positives (person, street_address) on its 200 hard negatives: {', '.join(fps)}.\n")


def fmt(x):
    return "–" if x is None else f"{x:.2f}"


def supported(engine_name, kind):
    return kind in PEER_TYPES[engine_name].values()


def print_report(res, docs, names, out):
    w = out.write
    support = {t: sum(1 for d in docs for g in d["entities"] if g["type"] == t) for t in TYPES}
    w("### Detection quality (precision / recall / F1 per type)\n\n")
    w("| type | labeled | " + " | ".join(names) + " |\n")
    w("|---|---:|" + "---|" * len(names) + "\n")
    for t in TYPES:
        cells = []
        for n in names:
            c = res[n]["quality"]["types"][t]
            if not supported(n, t):
                cells.append("no detector")
            else:
                cells.append(f"{fmt(c['precision'])} / {fmt(c['recall'])} / **{c['f1']:.2f}**")
        w(f"| {t} | {support[t]} | " + " | ".join(cells) + " |\n")
    tot = []
    for n in names:
        tp = sum(c["tp"] for c in res[n]["quality"]["types"].values())
        fp = sum(c["fp"] for c in res[n]["quality"]["types"].values())
        fn = sum(c["fn"] for c in res[n]["quality"]["types"].values())
        p, r = tp / (tp + fp) if tp + fp else 0, tp / (tp + fn) if tp + fn else 0
        tot.append(f"{p:.2f} / {r:.2f} / **{(2 * p * r / (p + r)) if p + r else 0:.2f}**")
    w(f"| all (micro) | {sum(support.values())} | " + " | ".join(tot) + " |\n\n")

    groups = sorted({d["group"] for d in docs if d["group"].startswith("negative:")})
    counts = {g: sum(1 for d in docs if d["group"] == g) for g in groups}
    w("### False positives on hard negatives (documents with no PII)\n\n")
    w("Spans of the nine scored types; in brackets, spans of the engine's other labels (not scored).\n\n")
    w("| hard negative | docs | " + " | ".join(names) + " |\n")
    w("|---|---:|" + "---:|" * len(names) + "\n")
    for g in groups:
        cells = []
        for n in names:
            q = res[n]["quality"]
            fp, other = q["neg_fp"].get(g, 0), q["neg_other"].get(g, 0)
            cells.append(f"{fp}" + (f" ({other})" if other else ""))
        w(f"| {g.split(':', 1)[1]} | {counts[g]} | " + " | ".join(cells) + " |\n")
    cells = []
    for n in names:
        q = res[n]["quality"]
        fp, other = sum(q["neg_fp"].values()), sum(q["neg_other"].values())
        cells.append(f"**{fp}**" + (f" ({other})" if other else ""))
    w(f"| total | {sum(counts.values())} | " + " | ".join(cells) + " |\n\n")

    w("### Speed (one process per engine, single-threaded, same JSONL protocol)\n\n")
    w("| | " + " | ".join(names) + " |\n")
    w("|---|" + "---:|" * len(names) + "\n")
    tp = res[names[0]].get("throughput")
    if tp:
        w(f"| throughput on {tp['bytes'] / 1e6:.2f} MB prose, sparse PII (MB/s) | "
          + " | ".join(f"{res[n]['throughput']['mb_per_s']:.2f}" for n in names) + " |\n")
        w("| MB per CPU-second (the engine process's user + system time) | "
          + " | ".join(f"{res[n]['throughput']['mb_per_cpu_s']:.2f}" for n in names) + " |\n")
        base = res[names[0]]["throughput"]["mb_per_s"]
        w("| Warden's throughput ÷ engine's | "
          + " | ".join(f"{base / res[n]['throughput']['mb_per_s']:.1f}×" for n in names) + " |\n")
        base = res[names[0]]["throughput"]["mb_per_cpu_s"]
        w("| Warden's MB/CPU-s ÷ engine's | "
          + " | ".join(f"{base / res[n]['throughput']['mb_per_cpu_s']:.1f}×" for n in names) + " |\n")
        lat = res[names[0]]["latency"]
        w(f"| mean latency per {lat['doc_bytes'] / 1000:.1f} KB document, one at a time (ms) | "
          + " | ".join(f"{res[n]['latency']['mean_ms']:.3f}" for n in names) + " |\n")
    w("| process start-up to first answer (s) | " + " | ".join(f"{res[n]['startup']:.3f}" for n in names) + " |\n")
    if all("size_mb" in res[n] for n in names):
        w("| installed size (MB) | " + " | ".join(f"{res[n]['size_mb']:.1f}" for n in names) + " |\n")
    w("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--corpus", default=os.path.join(here, "..", "..", "tests", "corpus"))
    ap.add_argument("--warden", required=True, help="path of the warden binary")
    ap.add_argument("--python", default=sys.executable, help="python of the venv holding the peers")
    ap.add_argument("--engines", default="warden,presidio,presidio_spacy,tork,datafog")
    ap.add_argument("--repeat", type=int, default=3, help="throughput runs per engine (median)")
    ap.add_argument("--latency-docs", type=int, default=200)
    ap.add_argument("--quality-only", action="store_true")
    ap.add_argument("--errors", default="", help="print the misses and false positives of these engines")
    ap.add_argument("--sizes", default="", help="JSON object engine -> installed size in MB")
    ap.add_argument("--json", help="also write the raw results here")
    args = ap.parse_args()

    labeled = load(os.path.join(args.corpus, "labeled.jsonl"))
    prose = load(os.path.join(args.corpus, "prose.jsonl"))
    docs = labeled + prose
    others = load(os.path.join(args.corpus, "others.jsonl"))
    people = load(os.path.join(args.corpus, "people.jsonl"))
    heldout = load(os.path.join(args.corpus, "people_heldout.jsonl"))
    worker = os.path.join(here, "peer_worker.py")
    engines = {
        "warden": Engine("warden", [args.warden, "detect"]),
        "presidio": Engine("presidio", [args.python, worker, "presidio"]),
        "presidio_spacy": Engine("presidio_spacy", [args.python, worker, "presidio_spacy"]),
        "tork": Engine("tork", [args.python, worker, "tork"]),
        "datafog": Engine("datafog", [args.python, worker, "datafog"]),
    }
    names = args.engines.split(",")
    sizes = json.loads(args.sizes) if args.sizes else {}
    res = {}
    load_before = open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else []
    for n in names:
        e = engines[n]
        print(f"[bench-peers] {n}: start-up", file=sys.stderr, flush=True)
        r = {"startup": startup(e)}
        print(f"[bench-peers] {n}: quality on {len(docs)} documents", file=sys.stderr, flush=True)
        r["quality"] = score(n, docs, run_quality(e, docs))
        print(f"[bench-peers] {n}: quality on {len(others)} documents written by others", file=sys.stderr, flush=True)
        r["others"] = score(n, others, run_quality(e, others))
        print(f"[bench-peers] {n}: names and addresses on {len(people) + len(heldout)} documents", file=sys.stderr, flush=True)
        r["people"] = score(n, people, run_quality(e, people), EXTRA_TYPES)
        held = run_quality(e, heldout)
        for g in ("heldout:census", "heldout:origin"):
            r[g] = score(n, [d for d in heldout if d["group"] == g], held, EXTRA_TYPES)
        if not args.quality_only:
            print(f"[bench-peers] {n}: throughput x{args.repeat}, latency", file=sys.stderr, flush=True)
            r["throughput"] = run_throughput(e, prose, args.repeat)
            r["latency"] = run_latency(e, prose[: args.latency_docs])
        if n in sizes:
            r["size_mb"] = sizes[n]
        res[n] = r
    load_after = open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else []

    for n in [x for x in args.errors.split(",") if x]:
        print(f"\n--- {n}: misses (FN) and false positives (FP) ---", file=sys.stderr)
        errs = [e for k in ("quality", "others", "people", "heldout:census", "heldout:origin") for e in res[n][k]["errors"]]
        for kind, t, doc_id, value, text in errs:
            print(f"{kind} {t} {doc_id}: {value!r}    in {text[:200]!r}", file=sys.stderr)

    print_report(res, docs, names, sys.stdout)
    print_others(res, names, sys.stdout)
    print_people(res, names, sys.stdout)
    print(f"Corpus: {len(labeled)} labeled documents + {len(prose)} prose documents. "
          f"Load average before/after: {' '.join(load_before)} / {' '.join(load_after)}.")
    if args.json:
        for r in res.values():
            for k in ("quality", "others", "people", "heldout:census", "heldout:origin"):
                r[k].pop("errors")
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
