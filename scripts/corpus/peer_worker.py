#!/usr/bin/env python3
"""Runs a peer PII detector behind the same JSONL protocol as `warden detect`, so the benchmark
drives every engine the same way: one `{"id","text"}` line in, one
`{"id","entities":[{"type","start","end"}]}` line out (char offsets), flushed per line.

Engines (each used the way its README shows a new user):
  presidio  presidio-analyzer's AnalyzerEngine with all predefined recognizers and the no-op NLP
            engine (pattern recognizers only: no spaCy model download). Default score threshold
            (0), all entities. tldextract is pointed at its bundled public-suffix snapshot
            because this machine has no network besides package registries.
  tork      tork_governance.Tork().govern(text) (the default "regional" detector); matches are
            read from result.pii.matches.

Types are the engine's own labels; bench_peers.py maps them to Warden's.
"""

import json
import sys


def presidio():
    import tldextract

    # The default extractor fetches the suffix list over the network first; use the snapshot.
    tldextract.extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NoOpNlpEngine

    engine = AnalyzerEngine(nlp_engine=NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}]))

    def detect(text):
        return [(r.entity_type, r.start, r.end) for r in engine.analyze(text=text, language="en")]

    return detect


def tork():
    from tork_governance import Tork

    client = Tork()

    def detect(text):
        return [(str(m.type), m.start_index, m.end_index) for m in client.govern(text).pii.matches]

    return detect


def main():
    detect = {"presidio": presidio, "tork": tork}[sys.argv[1]]()
    out = sys.stdout
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        ents = [{"type": t, "start": s, "end": e} for t, s, e in detect(req["text"])]
        out.write(json.dumps({"id": req["id"], "entities": ents}) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
