#!/usr/bin/env python3
"""Generates Warden's labeled PII corpus (golden data under tests/corpus/).

Deterministic: the same seed and the pinned Faker version reproduce every file byte for byte
(`--check` verifies that). Every value is built from parts (issuer prefix + Luhn digit, SSN
area/group/serial, IBAN mod-97 check digits, real base64url JWTs with HMAC signatures, ...) so
the labels are right by construction, and the surrounding sentences come from Faker and from
hand-written templates of tickets, chats, logs, JSON, config files and CSV rows.

Outputs (char offsets, i.e. Unicode scalar indices, like `warden detect`):
  labeled.jsonl    one document per line: {"id","group","text","entities":[{"type","start","end","value"}]}
                   group = a PII type (documents built around that type), "mixed" (several types
                   with hard-negative noise) or "negative:<kind>" (hard negatives, no entities)
  prose.jsonl      ~1 MB of ~1 KB paragraphs of prose with sparse PII (same schema, group "prose")
  requests_1k.json three ~1 KB request texts (no PII, some PII, dense PII) for the engine benches
  others.jsonl     text written by others: tickets, chats, CRM notes, signatures in several locales,
                   values straight from Faker's providers (see others.py)
  people.jsonl     person names and street addresses in the same styles, and hard negatives
  people_heldout.jsonl  names the gazetteers do not hold (see people.py)

Usage: generate.py [--out DIR] [--seed N] [--check]
"""

import argparse
import base64
import datetime
import hashlib
import hmac
import ipaddress
import json
import os
import random
import string
import sys

import faker

from others import others_docs
from people import heldout_docs, people_docs

FAKER_VERSION = "40.54.0"
DEFAULT_SEED = 20261122
TYPES = [
    "email_address",
    "us_ssn",
    "phone_number",
    "credit_card",
    "api_key",
    "jwt_token",
    "ip_address",
    "iban_code",
    "password",
]
DOCS_PER_TYPE = 200
MIXED_DOCS = 200
NEGATIVES_PER_KIND = 40
PROSE_BYTES = 1_000_000

# Fixed date range: Faker's relative ranges ("-3y") depend on today and would break reproducibility.
EPOCH_START = datetime.datetime(2023, 1, 1)
EPOCH_END = datetime.datetime(2027, 1, 1)

B62 = string.ascii_letters + string.digits
URLSAFE = B62 + "-_"


class Gen:
    """All random choices of one corpus run."""

    def __init__(self, seed):
        self.r = random.Random(seed)
        # One Faker per locale, each seeded on its own so adding a locale never shifts the others.
        self.locales = ["en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL"]
        self.fk = {}
        for k, loc in enumerate(self.locales):
            f = faker.Faker(loc)
            f.seed_instance(seed + k)
            self.fk[loc] = f
        self.en = self.fk["en_US"]

    # ---- helpers ----

    def pick(self, seq):
        return seq[self.r.randrange(len(seq))]

    def weighted(self, pairs):
        total = sum(w for w, _ in pairs)
        x = self.r.uniform(0, total)
        for w, v in pairs:
            x -= w
            if x <= 0:
                return v
        return pairs[-1][1]

    def digits(self, n):
        return "".join(self.r.choice(string.digits) for _ in range(n))

    def chars(self, alphabet, n):
        return "".join(self.r.choice(alphabet) for _ in range(n))

    def faker(self):
        return self.fk[self.pick(self.locales)]

    def name(self):
        return self.faker().name()

    def first(self):
        return self.faker().first_name()

    def company(self):
        return self.en.company()

    def city(self):
        return self.faker().city()

    def sentence(self):
        return self.en.sentence(nb_words=self.r.randint(6, 14))

    def date(self):
        d = self.en.date_between(start_date=EPOCH_START.date(), end_date=EPOCH_END.date())
        return self.pick(
            [d.isoformat(), d.strftime("%m/%d/%Y"), d.strftime("%B %d, %Y").replace(" 0", " "), d.strftime("%d.%m.%Y")]
        )

    def timestamp(self):
        return self.en.date_time_between(start_date=EPOCH_START, end_date=EPOCH_END).strftime("%Y-%m-%dT%H:%M:%SZ")

    def price(self):
        amount = self.r.randint(1, 250000) / 100
        return self.pick([f"${amount:,.2f}", f"USD {amount:,.2f}", f"€{amount:.2f}", f"{amount:.2f} EUR"])

    def order_no(self):
        return self.pick(
            [
                f"#{self.r.randint(100000, 99999999)}",
                f"ORD-{self.r.randint(2019, 2026)}-{self.digits(6)}",
                f"INV-{self.digits(8)}",
                f"PO {self.digits(10)}",
            ]
        )

    def uuid(self):
        return self.en.uuid4()

    def sha(self, n=40):
        return self.chars("0123456789abcdef", n)

    # ---- PII values ----

    def email(self):
        f = self.faker()
        style = self.weighted(
            [(30, "faker"), (15, "free"), (15, "company"), (12, "dotted"), (8, "plus"), (6, "upper"), (6, "sub"),
             (4, "digits"), (2, "apostrophe"), (2, "hyphen")]
        )
        first = self.en.first_name().lower()
        last = self.en.last_name().lower().replace("'", "")
        dom = self.en.domain_name()
        if style == "faker":
            return f.email()
        if style == "free":
            return self.en.free_email()
        if style == "company":
            return self.en.company_email()
        if style == "dotted":
            return f"{first}.{last}@{dom}"
        if style == "plus":
            return f"{first}+{self.pick(['news', 'billing', 'test', 'jira', 'work2'])}@{dom}"
        if style == "upper":
            return f"{first.capitalize()}.{last.capitalize()}@{dom.upper()}"
        if style == "sub":
            return f"{first[0]}{last}@{self.pick(['mail', 'eu', 'corp', 'dept-hr'])}.{dom.split('.')[0]}.{self.pick(['co.uk', 'com.au', 'de', 'io', 'org'])}"
        if style == "digits":
            return f"{first}{self.r.randint(1, 9999)}@{self.pick(['gmail.com', 'yahoo.com', 'outlook.com', 'proton.me'])}"
        if style == "apostrophe":
            return f"{first}.o'{last}@{dom}"
        return f"{first}-{last}@{dom.split('.')[0]}-{self.pick(['labs', 'group', 'health'])}.com"

    def ssn_parts(self):
        area = self.r.choice([a for a in range(1, 900) if a != 666])
        return f"{area:03d}", f"{self.r.randint(1, 99):02d}", f"{self.r.randint(1, 9999):04d}"

    def ssn(self, sep=None):
        a, g, s = self.ssn_parts()
        if sep is None:
            sep = self.weighted([(75, "-"), (25, " ")])
        return f"{a}{sep}{g}{sep}{s}"

    def nanp(self):
        area = self.r.choice([n for n in range(201, 990) if n % 100 != 11 and n // 100 not in (0, 1)])
        exch = self.r.choice([n for n in range(200, 1000) if n % 100 != 11])
        if self.r.random() < 0.25:
            return str(area), "555", f"01{self.digits(2)}"
        return str(area), str(exch), self.digits(4)

    def phone_us(self):
        a, e, l = self.nanp()
        fmt = self.weighted(
            [(20, "({a}) {e}-{l}"), (20, "{a}-{e}-{l}"), (8, "{a}.{e}.{l}"), (5, "{a} {e} {l}"), (5, "+1 {a} {e} {l}"),
             (6, "+1-{a}-{e}-{l}"), (5, "+1 ({a}) {e}-{l}"), (6, "+1{a}{e}{l}"), (6, "1-{tf}-{e}-{l}"),
             (4, "({a}){e}-{l}"), (2, "+1.{a}.{e}.{l}"), (4, "+1 {a}-{e}-{l}")]
        )
        return fmt.format(a=a, e=e, l=l, tf=self.pick(["800", "888", "877", "866"]))

    INTL = [
        ("44", ["20 #### ####", "7### ######", "(0)20 #### ####", "161 ### ####", "113 ### ####"]),
        ("49", ["30 ########", "151 ########", "89 #######", "(0)30 #######"]),
        ("33", ["1 ## ## ## ##", "6 ## ## ## ##", "(0)1 ## ## ## ##"]),
        ("34", ["6## ### ###", "91 ### ## ##"]),
        ("39", ["06 #### ####", "3## ### ####"]),
        ("31", ["20 ### ####", "6 ########"]),
        ("61", ["2 #### ####", "4## ### ###"]),
        ("81", ["3-####-####", "90-####-####"]),
        ("91", ["9#### #####", "22-####-####"]),
        ("55", ["11 9####-####"]),
        ("52", ["55 #### ####"]),
        ("86", ["13# #### ####"]),
        ("65", ["6### ####"]),
        ("353", ["1 ### ####", "8# ### ####"]),
        ("41", ["44 ### ## ##"]),
        ("46", ["8 ### ### ##"]),
        ("27", ["21 ### ####"]),
    ]

    def phone_intl(self):
        cc, forms = self.pick(self.INTL)
        form = self.pick(forms)
        body = "".join(self.pick(string.digits) if c == "#" else c for c in form)
        style = self.weighted([(70, "as is"), (15, "e164"), (15, "dashes")])
        if style == "e164":
            return "+" + cc + "".join(c for c in body.replace("(0)", "") if c.isdigit())
        if style == "dashes" and "(" not in body:
            return f"+{cc}-" + body.replace(" ", "-")
        return f"+{cc} {body}"

    def phone(self):
        return self.phone_us() if self.r.random() < 0.55 else self.phone_intl()

    @staticmethod
    def luhn_digit(partial):
        total = 0
        for k, ch in enumerate(reversed(partial)):
            d = int(ch)
            if k % 2 == 0:
                d *= 2
                if d > 9:
                    d -= 9
            total += d
        return str((10 - total % 10) % 10)

    def card_digits(self):
        issuer = self.weighted(
            [(30, "visa"), (15, "mc5"), (10, "mc2"), (12, "amex"), (8, "discover"), (6, "jcb"), (5, "diners"),
             (6, "unionpay"), (4, "maestro")]
        )
        prefix, length = {
            "visa": ("4", 16),
            "mc5": (str(self.r.randint(51, 55)), 16),
            "mc2": (str(self.r.randint(2221, 2720)), 16),
            "amex": (self.pick(["34", "37"]), 15),
            "discover": (self.pick(["6011", "65", str(self.r.randint(644, 649))]), 16),
            "jcb": (str(self.r.randint(3528, 3589)), 16),
            "diners": (self.pick(["36", str(self.r.randint(300, 305))]), 14),
            "unionpay": ("62", 16),
            "maestro": (self.pick(["5018", "5020", "5038", "5893", "6304", "6759", "6761", "6762", "6763"]),
                        self.pick([16, 16, 19])),
        }[issuer]
        body = prefix + self.digits(length - len(prefix) - 1)
        return body + self.luhn_digit(body)

    @staticmethod
    def group_card(d, sep):
        if len(d) == 15:
            parts = [d[:4], d[4:10], d[10:]]
        elif len(d) == 14:
            parts = [d[:4], d[4:10], d[10:]]
        else:
            parts = [d[k : k + 4] for k in range(0, len(d), 4)]  # 19 digits: 4-4-4-4-3
        return sep.join(parts)

    def card(self):
        d = self.card_digits()
        sep = self.weighted([(40, ""), (40, " "), (20, "-")])
        return d if sep == "" else self.group_card(d, sep)

    def api_key(self):
        kind = self.weighted(
            [(14, "openai"), (10, "openai_proj"), (10, "anthropic"), (12, "stripe"), (14, "aws"), (12, "github"),
             (6, "github_pat"), (10, "slack"), (12, "google"), (5, "gitlab"), (5, "npm"), (5, "huggingface"),
             (4, "sendgrid")]
        )
        if kind == "openai":
            return "sk-" + self.chars(B62, 48)
        if kind == "openai_proj":
            return "sk-proj-" + self.chars(URLSAFE, self.pick([64, 132, 156]))
        if kind == "anthropic":
            return "sk-ant-api03-" + self.chars(URLSAFE, 93) + "AA"
        if kind == "stripe":
            return self.pick(["sk_live_", "sk_test_", "rk_live_", "rk_test_"]) + self.chars(B62, self.pick([24, 34, 99]))
        if kind == "aws":
            return self.pick(["AKIA", "AKIA", "ASIA"]) + self.chars(string.ascii_uppercase + "234567", 16)
        if kind == "github":
            return self.pick(["ghp_", "ghp_", "gho_", "ghs_", "ghu_"]) + self.chars(B62, 36)
        if kind == "github_pat":
            return "github_pat_11" + self.chars(string.ascii_uppercase + string.digits, 20) + "_" + self.chars(B62, 59)
        if kind == "slack":
            if self.r.random() < 0.6:
                return f"xoxb-{self.digits(12)}-{self.digits(13)}-{self.chars(B62, 24)}"
            return f"xoxp-{self.digits(12)}-{self.digits(12)}-{self.digits(13)}-{self.sha(32)}"
        if kind == "gitlab":
            return "glpat-" + self.chars(URLSAFE, 20)
        if kind == "npm":
            return "npm_" + self.chars(B62, 36)
        if kind == "huggingface":
            return "hf_" + self.chars(string.ascii_letters, 34)
        if kind == "sendgrid":
            return "SG." + self.chars(URLSAFE, 22) + "." + self.chars(URLSAFE, 43)
        return "AIza" + self.chars(URLSAFE, 35)

    @staticmethod
    def b64url(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    def jwt(self):
        alg = self.weighted([(45, "HS256"), (30, "RS256"), (12, "ES256"), (5, "HS512"), (8, "none")])
        header = {"alg": alg, "typ": "JWT"}
        if alg in ("RS256", "ES256") and self.r.random() < 0.7:
            header = {"alg": alg, "kid": self.sha(self.pick([8, 16, 40])), "typ": self.pick(["JWT", "at+jwt"])}
        elif self.r.random() < 0.15:
            header = {"typ": "JWT", "alg": alg}
        now = self.r.randint(1_600_000_000, 1_800_000_000)
        payload = {"sub": self.pick([str(self.r.randint(1, 10**7)), self.uuid(), self.en.user_name()])}
        if self.r.random() < 0.6:
            payload["name"] = self.en.name()
        if self.r.random() < 0.5:
            payload["iss"] = "https://" + self.pick(["auth.", "login.", "id."]) + self.en.domain_name()
        if self.r.random() < 0.4:
            payload["scope"] = self.pick(["read:orders", "openid profile email", "admin", "api.read api.write"])
        payload["iat"] = now
        if self.r.random() < 0.8:
            payload["exp"] = now + self.pick([300, 900, 3600, 86400])
        spaced = self.r.random() < 0.2
        seps = (", ", ": ") if spaced else (",", ":")
        h = self.b64url(json.dumps(header, separators=seps).encode())
        p = self.b64url(json.dumps(payload, separators=seps).encode())
        signing_input = f"{h}.{p}".encode()
        if alg == "none":
            return f"{h}.{p}."
        if alg.startswith("HS"):
            digest = hashlib.sha256 if alg == "HS256" else hashlib.sha512
            sig = hmac.new(self.chars(B62, 32).encode(), signing_input, digest).digest()
        else:
            sig = bytes(self.r.randrange(256) for _ in range(256 if alg == "RS256" else 64))
        return f"{h}.{p}.{self.b64url(sig)}"

    def ipv4(self):
        kind = self.weighted([(45, "public"), (35, "private"), (20, "edge")])
        if kind == "public":
            return self.en.ipv4_public()
        if kind == "private":
            return self.en.ipv4_private()
        # Boundary octets (0, 9/10, 99/100, 199/200, 249/250, 255) in the last three places.
        octets = [self.r.randint(1, 223)] + [self.pick([0, 1, 9, 10, 99, 100, 199, 200, 249, 250, 254, 255,
                                                        self.r.randint(0, 255)]) for _ in range(3)]
        return ".".join(str(o) for o in octets)

    def ipv6(self):
        kind = self.weighted([(30, "faker"), (25, "doc"), (15, "linklocal"), (8, "loop"), (8, "mapped"), (8, "full"),
                              (6, "upper")])
        if kind == "faker":
            return str(ipaddress.IPv6Address(self.en.ipv6()))
        if kind == "doc":
            groups = [0x2001, 0xDB8] + [self.r.randrange(65536) if self.r.random() < 0.5 else 0 for _ in range(6)]
            return str(ipaddress.IPv6Address(":".join(f"{g:x}" for g in groups)))
        if kind == "linklocal":
            groups = [0xFE80, 0, 0, 0] + [self.r.randrange(65536) for _ in range(4)]
            return str(ipaddress.IPv6Address(":".join(f"{g:x}" for g in groups)))
        if kind == "loop":
            return "::1"
        if kind == "mapped":
            return "::ffff:" + self.en.ipv4_public()
        if kind == "full":
            return ipaddress.IPv6Address(self.en.ipv6()).exploded
        return str(ipaddress.IPv6Address(self.en.ipv6())).upper()

    def ip(self):
        return self.ipv4() if self.r.random() < 0.6 else self.ipv6()

    IBAN_FORMATS = {
        # country: BBAN layout (n = digit, a = upper letter, c = either), lengths per the SWIFT registry
        "DE": "nnnnnnnnnnnnnnnnnn",
        "GB": "aaaannnnnnnnnnnnnn",
        "FR": "nnnnnnnnnnccccccccccc" + "nn",
        "ES": "nnnnnnnnnnnnnnnnnnnn",
        "IT": "a" + "nnnnnnnnnn" + "cccccccccccc",
        "NL": "aaaannnnnnnnnn",
        "BE": "nnnnnnnnnnnn",
        "CH": "nnnnn" + "cccccccccccc",
        "AT": "nnnnnnnnnnnnnnnn",
        "PL": "nnnnnnnnnnnnnnnnnnnnnnnn",
        "PT": "nnnnnnnnnnnnnnnnnnnnn",
        "IE": "aaaannnnnnnnnnnnnn",
        "SE": "nnnnnnnnnnnnnnnnnnnn",
        "NO": "nnnnnnnnnnn",
        "DK": "nnnnnnnnnnnnnn",
        "FI": "nnnnnnnnnnnnnn",
        "LU": "nnnccccccccccccc",
        "CZ": "nnnnnnnnnnnnnnnnnnnn",
    }

    @staticmethod
    def iban_check(country, bban):
        rearranged = bban + country + "00"
        num = "".join(str(int(c, 36)) for c in rearranged)
        return f"{98 - int(num) % 97:02d}"

    def iban(self):
        if self.r.random() < 0.35:
            loc = self.pick(["de_DE", "en_GB", "fr_FR", "es_ES", "it_IT", "nl_NL"])
            compact = self.fk[loc].iban()
        else:
            country = self.pick(sorted(self.IBAN_FORMATS))
            bban = "".join(
                self.pick(string.digits) if c == "n" else self.pick(string.ascii_uppercase) if c == "a"
                else self.pick(string.digits + string.ascii_uppercase) for c in self.IBAN_FORMATS[country]
            )
            compact = country + self.iban_check(country, bban) + bban
        if self.r.random() < 0.5:
            return " ".join(compact[k : k + 4] for k in range(0, len(compact), 4))
        return compact

    def password(self, quoted):
        """A secret; unquoted ones have no blanks, do not start like an operator or bracket and do
        not end in sentence punctuation (a reader could not tell those from the sentence either)."""
        style = self.weighted([(40, "faker"), (20, "word"), (15, "random"), (10, "pin"), (15, "phrase")])
        if style == "phrase" and not quoted:
            style = "word"
        if style == "faker":
            v = self.en.password(length=self.r.randint(8, 20), special_chars=True)
        elif style == "word":
            v = self.en.word().capitalize() + str(self.r.randint(1, 2026)) + self.pick(["!", "#", "$", "", "?", "*"])
        elif style == "random":
            v = self.chars(B62 + "!#$%&*+-=?@^_~", self.r.randint(10, 32))
        elif style == "pin":
            v = self.en.word() + self.digits(self.r.randint(2, 6))
        else:
            v = " ".join(self.en.words(nb=4))
        if not quoted:
            # Nor may they start like an operator or an opening bracket (`pwd==x`, `password: (x`).
            while v and v[0] in "=>:([{<\"'":
                v = self.pick(string.ascii_letters + string.digits) + v[1:]
            while v and v[-1] in ",;.)]}\"'>!?":
                v = v[:-1] + self.pick(string.ascii_letters + string.digits)
            v = v.replace('"', "x").replace("'", "x")
        else:
            v = v.replace('"', "x").replace("'", "x").replace("\\", "x")
        return v


# ---- documents ----


class Doc:
    """Text under construction with its labeled spans (char offsets)."""

    def __init__(self):
        self.parts = []
        self.n = 0
        self.entities = []

    def add(self, s):
        self.parts.append(s)
        self.n += len(s)

    def pii(self, kind, value):
        self.entities.append({"type": kind, "start": self.n, "end": self.n + len(value), "value": value})
        self.add(value)

    def text(self):
        return "".join(self.parts)


def render(g, doc, template, values):
    """Appends `template` with `{slot}` holes: PII slots (`{email_address}`, `{password}`, ...)
    take the next labeled value; the others are filled from Faker and are not labeled."""
    fill = {
        "name": g.name,
        "first": g.first,
        "company": g.company,
        "city": g.city,
        "date": g.date,
        "ts": g.timestamp,
        "price": g.price,
        "order": g.order_no,
        "uuid": g.uuid,
        "sha": g.sha,
        "sentence": g.sentence,
        "n": lambda: str(g.r.randint(2, 999)),
        "port": lambda: str(g.pick([22, 443, 5432, 8080, 8443, 3000, 6379])),
        "mmyy": lambda: f"{g.r.randint(1, 12):02d}/{g.r.randint(26, 31)}",
    }
    k = 0
    while True:
        open_ = template.find("{", k)
        if open_ < 0:
            doc.add(template[k:])
            return
        close = template.index("}", open_)
        doc.add(template[k:open_])
        slot = template[open_ + 1 : close]
        if slot in fill:
            doc.add(fill[slot]())
        else:
            kind, value = values.pop(0)
            assert kind == slot.split(":")[0], (kind, slot)
            doc.pii(kind, value)
        k = close + 1


TEMPLATES = {
    "email_address": [
        "Contact: {email_address}",
        "Hi team, please loop in {name} ({email_address}) on the {company} renewal.",
        "From: {name} <{email_address}>\nSubject: Re: order {order}\n\n{sentence}",
        "You can reach me at {email_address}.",
        '{{"user": {{"id": "{uuid}", "email": "{email_address}", "created": "{ts}"}}}}',
        "{ts} INFO auth login ok user={email_address} session={uuid}",
        "cc: {email_address}, {email_address}",
        "Write to [our support inbox](mailto:{email_address}) if you are in {city}.",
        "name,email,signup\n{name},{email_address},{date}",
        "Forwarding to {email_address}; {sentence}",
        "Reset link sent to '{email_address}' at {ts}.",
        "Ticket {order}: customer {name} writes from {email_address} about a refund of {price}.",
    ],
    "us_ssn": [
        "SSN: {us_ssn}",
        "Applicant {name}, DOB {date}, SSN {us_ssn}, lives in {city}.",
        "Please verify the social security number {us_ssn} before payroll runs.",
        '{{"employee": "{name}", "ssn": "{us_ssn}", "start_date": "{date}"}}',
        "W-2 for {name} (SSN {us_ssn}) was mailed on {date}.",
        "Member id {order}; SSN on file {us_ssn}; balance {price}.",
        "{name}'s Social Security Number is {us_ssn}.",
        "ssn={us_ssn} status=verified ts={ts}",
        "Customer provided their SS# {us_ssn} over the phone.",
        "SSN {us_ssn} does not match the record created {date}.",
    ],
    "us_ssn:bare": [
        "SSN: {us_ssn}",
        "Social Security Number: {us_ssn}",
        "ssn={us_ssn} verified={date}",
        '{{"name": "{name}", "ssn": "{us_ssn}"}}',
        "Employee SSN {us_ssn}, hired {date}.",
        "Please confirm the SSN on file, {us_ssn}, before {date}.",
        "social security no. {us_ssn}",
    ],
    "phone_number": [
        "Call me at {phone_number}.",
        "Phone: {phone_number}",
        "{name} | {company} | {phone_number} | {city}",
        "You can reach our front desk on {phone_number} (ext. {n}).",
        '{{"contact": {{"name": "{name}", "phone": "{phone_number}"}}}}',
        "tel:{phone_number}",
        "Left a voicemail for {first} at {phone_number} about order {order}.",
        "Mobile {phone_number}, office {phone_number}",
        "For urgent issues text {phone_number} or email the desk.",
        "{ts} WARN sms delivery failed to={phone_number} attempt={n}",
        "Emergency contact: {name}, {phone_number}.",
        "Please call back on {phone_number}; {sentence}",
        "Direct line {phone_number} x{n}",
    ],
    "credit_card": [
        "Card number: {credit_card}",
        "Charged {price} to card {credit_card} (exp {mmyy}).",
        '{{"payment": {{"pan": "{credit_card}", "exp": "{mmyy}", "amount": "{price}"}}}}',
        "Please update the card on file to {credit_card}.",
        "{ts} ERROR payment declined card={credit_card} order={order}",
        "My new card is {credit_card}, expiry {mmyy}, CVV {n}.",
        "Refund {price} back to {credit_card} for order {order}.",
        "{name},{credit_card},{mmyy},{city}",
    ],
    "api_key": [
        "OPENAI_API_KEY={api_key}",
        "export AWS_ACCESS_KEY_ID={api_key}",
        "Authorization: Bearer {api_key}",
        '{{"api_key": "{api_key}", "region": "us-east-1"}}',
        "I accidentally committed {api_key} to the repo on {date}, please rotate it.",
        "curl -H 'Authorization: token {api_key}' https://api.example.com/v1/repos",
        "api_key: {api_key}\ntimeout: 30",
        "use this key for staging: {api_key}",
        "https://maps.example.com/api/js?key={api_key}&callback=init",
        "{ts} DEBUG outbound request key={api_key} status=401",
    ],
    "jwt_token": [
        "Authorization: Bearer {jwt_token}",
        "id_token={jwt_token}&state={sha}",
        '{{"access_token": "{jwt_token}", "token_type": "Bearer", "expires_in": 3600}}',
        "Cookie: session={jwt_token}; Path=/; HttpOnly",
        "The token {jwt_token} expired at {ts}.",
        "{ts} DEBUG verify jwt={jwt_token} result=invalid_signature",
        "Here is my token, can you decode it? {jwt_token}",
        "https://app.example.com/callback#access_token={jwt_token}&token_type=Bearer&expires_in=3600",
    ],
    "ip_address": [
        "Login from {ip_address} at {ts}.",
        '{ip_address} - - [10/Oct/2024:13:55:36 -0700] "GET /index.html HTTP/1.1" 200 2326',
        "client={ip_address} method=POST path=/api/v1/orders status=201",
        "Please whitelist {ip_address} for the {company} VPN.",
        "ssh deploy@{ip_address} -p {port}",
        "Upstream {ip_address:v4}:{port} timed out",
        "The server at [{ip_address:v6}]:{port} refused the connection.",
        '{{"remote_addr": "{ip_address}", "user_agent": "Mozilla/5.0"}}',
        "Blocked {ip_address}, {ip_address} and {ip_address} after repeated failures.",
        "Interface eth0 has address {ip_address:v6} since {date}.",
        "Open http://{ip_address:v4}/admin in the browser.",
        "X-Forwarded-For: {ip_address}, {ip_address:v4}",
    ],
    "iban_code": [
        "IBAN: {iban_code}",
        "Please wire {price} to {name}, IBAN {iban_code}, BIC DEUTDEFF.",
        '{{"beneficiary": "{name}", "iban": "{iban_code}"}}',
        "Our bank details changed: {iban_code} ({company}).",
        "Refund to account {iban_code} initiated {date}.",
        "{name};{iban_code};{price}",
    ],
    "password": [
        "password: {password}",
        "pwd={password}",
        "DB_PASSWORD={password}",
        '{{"username": "{first}", "password": "{password:q}"}}',
        "Your temporary password is {password}",
        "mysql --user=admin --password={password} -h db.internal",
        "passwd: {password}",
        "password = '{password:q}'",
        "Login: {first}\nPassword: {password}",
        "<password>{password:x}</password>",
        "passphrase: \"{password:q}\"",
        "spring.datasource.password={password}",
        "'password' => '{password:q}',",
        '{{"user":"{first}","password":"{password:q}"}}',
        "docker login -u {first} --password {password} registry.example.com",
    ],
}

MIXED_TEMPLATES = [
    "{ts} INFO user={email_address} ip={ip_address} req={uuid} build {sha}",
    "New hire: {name}\nEmail: {email_address}\nPhone: {phone_number}\nSSN: {us_ssn}\nStart: {date}",
    '{{"customer": {{"email": "{email_address}", "phone": "{phone_number}"}}, "card": "{credit_card}", "order": "{order}"}}',
    "Hi {first}, the prod creds are user admin / password: {password} and the key is {api_key}. Ticket {order}.",
    "Refund {price} for order {order}: card {credit_card} or IBAN {iban_code}, whichever works.",
    "{ts} WARN token={jwt_token} from {ip_address} rejected",
    "{name} ({email_address}) called from {phone_number} on {date} about invoice {order}.",
    "Backup job {uuid} on {ip_address}: DB_PASSWORD={password} API_KEY={api_key}",
    "Applicant {name}, SSN {us_ssn}, phone {phone_number}, paid {price} with {credit_card}.",
    "Rotate {api_key} and revoke {jwt_token} before {date}.",
]


def value_for(g, slot):
    kind, _, variant = slot.partition(":")
    if kind == "email_address":
        return g.email()
    if kind == "us_ssn":
        return g.ssn()
    if kind == "phone_number":
        return g.phone()
    if kind == "credit_card":
        return g.card()
    if kind == "api_key":
        return g.api_key()
    if kind == "jwt_token":
        return g.jwt()
    if kind == "ip_address":
        return g.ipv6() if variant == "v6" else g.ipv4() if variant == "v4" else g.ip()
    if kind == "iban_code":
        return g.iban()
    if kind == "password":
        v = g.password(quoted=variant == "q")
        return v.replace("<", "x") if variant == "x" else v
    raise ValueError(slot)


def slots_of(template):
    out, k = [], 0
    while True:
        o = template.find("{", k)
        if o < 0:
            return out
        if template.startswith("{{", o):
            k = o + 2
            continue
        c = template.index("}", o)
        out.append(template[o + 1 : c])
        k = c + 1


def fill_template(g, template, bare_ssn=False):
    """Renders a template (with `{{`/`}}` as literal braces) into a Doc."""
    values = []
    for slot in slots_of(template):
        kind = slot.split(":")[0]
        if kind in TYPES:
            if kind == "us_ssn" and bare_ssn:
                a, gr, s = g.ssn_parts()
                values.append((kind, a + gr + s))
            else:
                values.append((kind, value_for(g, slot)))
    doc = Doc()
    # Literal braces: split on the escapes, render the pieces, and join with single braces.
    pieces = template.replace("{{", "\x00").replace("}}", "\x01")
    render(g, doc, pieces, values)
    text = doc.text().replace("\x00", "{").replace("\x01", "}")
    return text, doc.entities


def positive_docs(g):
    docs = []
    for kind in TYPES:
        for k in range(DOCS_PER_TYPE):
            bare = kind == "us_ssn" and g.r.random() < 0.3
            tmpl = g.pick(TEMPLATES["us_ssn:bare"] if bare else TEMPLATES[kind])
            text, ents = fill_template(g, tmpl, bare_ssn=bare)
            docs.append({"id": f"{kind}-{k:04d}", "group": kind, "text": text, "entities": ents})
    for k in range(MIXED_DOCS):
        text, ents = fill_template(g, g.pick(MIXED_TEMPLATES), bare_ssn=False)
        docs.append({"id": f"mixed-{k:04d}", "group": "mixed", "text": text, "entities": ents})
    return docs


# ---- hard negatives: realistic text that holds no PII of SPEC §4 ----


def isbn13(g):
    body = "978" + g.digits(9)
    check = (10 - sum(int(c) * (1 if k % 2 == 0 else 3) for k, c in enumerate(body)) % 10) % 10
    return body + str(check)


def isbn10(g):
    body = g.digits(9)
    check = sum((10 - k) * int(c) for k, c in enumerate(body)) % 11
    check = (11 - check) % 11
    return body + ("X" if check == 10 else str(check))


def invalid_iban(g):
    """An IBAN with one digit changed, so mod-97 fails."""
    while True:
        v = g.iban().replace(" ", "")
        k = g.r.randrange(4, len(v))
        if v[k].isdigit():
            bad = v[:k] + str((int(v[k]) + g.r.randint(1, 9)) % 10) + v[k + 1 :]
            return bad if g.r.random() < 0.5 else " ".join(bad[i : i + 4] for i in range(0, len(bad), 4))


def luhn_invalid_card(g):
    d = g.card_digits()
    bad = d[:-1] + str((int(d[-1]) + g.r.randint(1, 9)) % 10)
    sep = g.pick(["", " ", "-"])
    return bad if sep == "" else Gen.group_card(bad, sep)


def invalid_ssn(g):
    a, gr, s = g.ssn_parts()
    which = g.pick(["000", "666", "9xx", "00", "0000"])
    if which in ("000", "666"):
        a = which
    elif which == "9xx":
        a = str(g.r.randint(900, 999))
    elif which == "00":
        gr = "00"
    else:
        s = "0000"
    return f"{a}-{gr}-{s}" if g.r.random() < 0.8 else f"{a} {gr} {s}"


def not_jwt(g):
    kind = g.pick(["flask", "django", "dotted", "state"])
    payload = json.dumps({"user_id": g.r.randint(1, 99999), "_fresh": g.pick([True, False])}, separators=(",", ":"))
    p = Gen.b64url(payload.encode())
    if kind == "flask":
        return f"{p}.{Gen.b64url(bytes(g.r.randrange(256) for _ in range(4)))}.{g.chars(URLSAFE, 27)}"
    if kind == "django":
        return f"{p}:{g.chars(B62, 6)}:{g.chars(URLSAFE, 43)}"
    if kind == "dotted":
        return ".".join(Gen.b64url(bytes(g.r.randrange(256) for _ in range(g.r.randint(12, 40)))) for _ in range(3))
    return Gen.b64url(json.dumps({"returnTo": "/orders/" + g.digits(6), "nonce": g.sha(16)}).encode())


def version(g):
    kind = g.pick(["semver", "pre", "v4", "python", "win", "assembly", "chrome"])
    a, b, c = g.r.randint(0, 20), g.r.randint(0, 40), g.r.randint(0, 200)
    if kind == "semver":
        return f"v{a}.{b}.{c}"
    if kind == "pre":
        return f"{a}.{b}.{c}-rc.{g.r.randint(1, 5)}"
    if kind == "v4":
        return f"v{a}.{b}.{c}.{g.r.randint(0, 255)}"
    if kind == "python":
        return f"Python 3.{g.r.randint(8, 13)}.{g.r.randint(0, 12)}"
    if kind == "win":
        return f"10.0.{g.r.randint(17000, 26100)}.{g.r.randint(1, 4000)}"
    if kind == "assembly":
        return f"Version={a}.{b}.0.0"
    return f"Chrome/{g.r.randint(100, 131)}.0.{g.r.randint(4000, 6999)}.{g.r.randint(1, 250)}"


NEGATIVES = {
    "uuid": lambda g: g.pick([
        f"Request {g.uuid()} completed in {g.r.randint(3, 900)} ms.",
        f"CLSID {{{g.uuid().upper()}}} registered",
        f'{{"trace_id": "{g.uuid()}", "span_id": "{g.sha(16)}"}}',
        f"Job {g.uuid().upper()} queued at {g.timestamp()}",
        f"correlation-id: {g.uuid()}",
    ]),
    "git_sha": lambda g: g.pick([
        f"commit {g.sha(40)}\nAuthor: {g.name()}\nDate: {g.date()}",
        f"Fixed in {g.sha(7)}, reverted in {g.sha(10)}.",
        f"Merge pull request #{g.r.randint(10, 9999)} from {g.sha(40)}",
        f"HEAD is now at {g.sha(12)} {g.sentence()}",
    ]),
    "hex_blob": lambda g: g.pick([
        f"sha256:{g.sha(64)}",
        f"md5 {g.sha(32)}  release.tar.gz",
        f"digest={g.sha(64)} size={g.r.randint(1000, 99999999)}",
        f"0x{g.sha(40)} is the contract address",
    ]),
    "base64_blob": lambda g: g.pick([
        "data:image/png;base64," + base64.b64encode(bytes(g.r.randrange(256) for _ in range(g.r.randint(60, 240)))).decode(),
        "-----BEGIN CERTIFICATE-----\n" + base64.b64encode(bytes(g.r.randrange(256) for _ in range(144))).decode() + "\n-----END CERTIFICATE-----",
        "signature: " + base64.b64encode(bytes(g.r.randrange(256) for _ in range(64))).decode(),
        "state=" + Gen.b64url(bytes(g.r.randrange(256) for _ in range(48))),
    ]),
    "order_number": lambda g: g.pick([
        f"Order {g.digits(9)} has shipped.",
        f"Your order #{g.r.randint(1, 9)}{g.digits(8)} will arrive on {g.date()}.",
        f"ORD-{g.r.randint(2019, 2026)}-{g.digits(6)} was refunded.",
        f"Invoice INV-{g.digits(8)} for {g.price()} is overdue.",
        f"Tracking number 1Z{g.chars(string.ascii_uppercase + string.digits, 16)}",
        f"Reference {g.r.randint(1, 9)}{g.digits(9)} (account statement {g.date()})",
        f"PO {g.digits(10)}, line {g.r.randint(1, 40)}, qty {g.r.randint(1, 500)}",
    ]),
    "date": lambda g: g.pick([
        f"The meeting moved to {g.date()}.",
        f"Valid from {g.date()} to {g.date()}.",
        f"created_at={g.timestamp()} updated_at={g.timestamp().replace('Z', '+05:30')}",
        f"Due {g.en.date_between(start_date=EPOCH_START.date(), end_date=EPOCH_END.date()).strftime('%Y%m%d')}, paid {g.date()}",
    ]),
    "time": lambda g: g.pick([
        f"Standup at {g.r.randint(7, 18)}:{g.pick(['00', '15', '30', '45'])}, retro at {g.r.randint(1, 12)}:30 PM.",
        f"[{g.r.randint(0, 23):02d}:{g.r.randint(0, 59):02d}:{g.r.randint(0, 59):02d}.{g.digits(3)}] worker started",
        f"elapsed {g.r.randint(0, 99):02d}:{g.r.randint(0, 59):02d}:{g.r.randint(0, 59):02d}",
        f"Opening hours 09:00-17:30, {g.r.randint(1, 28)}:{g.r.randint(10, 59)}:{g.r.randint(10, 59)} UTC+02:00",
        f"MAC {':'.join(g.sha(2).upper() for _ in range(6))} joined the network",
    ]),
    "price": lambda g: g.pick([
        f"Total: {g.price()} (tax {g.price()})",
        f"The plan costs {g.price()} per month or {g.price()} per year.",
        f"Revenue grew to ${g.r.randint(1, 999)},{g.digits(3)},{g.digits(3)} in Q{g.r.randint(1, 4)}.",
        f"Price {g.r.randint(1, 9)}.{g.digits(3)},{g.digits(2)} €",
    ]),
    "zip_code": lambda g: g.pick([
        f"{g.en.street_address()}, {g.en.city()}, {g.en.state_abbr()} {g.en.zipcode()}",
        f"Ship to ZIP {g.en.zipcode_plus4()}.",
        f"{g.en.city()} {g.en.state_abbr()} {g.en.zipcode_plus4()}",
        f"zip={g.en.zipcode()} country=US",
    ]),
    "isbn": lambda g: g.pick([
        f"ISBN {(lambda s: f'{s[:3]}-{s[3]}-{s[4:8]}-{s[8:12]}-{s[12]}')(isbn13(g))}",
        f"ISBN-13: {isbn13(g)}",
        f"ISBN {(lambda s: f'{s[0]}-{s[1:4]}-{s[4:9]}-{s[9]}')(isbn10(g))}",
        f"See {g.en.catch_phrase()} (ISBN {isbn10(g)}), chapter {g.r.randint(1, 30)}.",
    ]),
    "version": lambda g: g.pick([
        f"Upgraded to {version(g)} from {version(g)}.",
        f"User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 {version(g)}",
        f"{version(g)} is required (found {version(g)}).",
        f"System.Runtime, {version(g)}, Culture=neutral, PublicKeyToken={g.sha(16)}",
    ]),
    "luhn_invalid": lambda g: g.pick([
        f"Card number: {luhn_invalid_card(g)}",
        f"Charged {g.price()} to {luhn_invalid_card(g)}",
        f"pan={luhn_invalid_card(g)} status=invalid",
    ]),
    "invalid_ssn": lambda g: g.pick([
        f"SSN: {invalid_ssn(g)}",
        f"Rejected SSN {invalid_ssn(g)} (not issued)",
        f"ssn={invalid_ssn(g)} status=invalid",
    ]),
    "not_jwt": lambda g: g.pick([
        f"Cookie: session={not_jwt(g)}; Path=/",
        f"signed value {not_jwt(g)}",
        f"https://app.example.com/callback?state={not_jwt(g)}",
    ]),
    "lookalike": lambda g: g.pick([
        f"Coordinates {g.r.uniform(-89, 89):.4f}, {g.r.uniform(-179, 179):.4f}",
        f"Resolution {g.pick(['1920x1080', '2560x1440', '3840x2160'])}, refresh {g.r.randint(60, 240)} Hz",
        f"@{g.en.user_name()} can you review this? cc @{g.en.user_name()}",
        f"npm install @types/node@{g.r.randint(14, 22)}.{g.r.randint(0, 20)}.{g.r.randint(0, 9)}",
        f"Use std::collections::HashMap and Vec::with_capacity({g.r.randint(1, 99)}).",
        f"OPENAI_API_KEY=sk-your-key-here  # placeholder, set in CI",
        "password: ********",
        f"password: ${{DB_PASSWORD}}",
        f"The password is required and must be {g.r.randint(8, 16)} characters.",
        f"Listening on localhost:{g.r.randint(1024, 65535)}",
        f"Temperature +{g.r.randint(1, 40)}.{g.r.randint(0, 9)}°C, growth +{g.r.randint(1, 99)}%",
        f"Call 911 or extension {g.r.randint(100, 9999)}.",
        f"<img src=\"logo@{g.r.randint(2, 3)}x.{g.pick(['png', 'jpg', 'webp', 'svg'])}\">",
        f"arn:aws:iam::{g.digits(12)}:user/{g.en.user_name()}",
    ]),
    "masked": lambda g: g.pick([
        f"SSN ***-**-{g.digits(4)}",
        f"SSN XXX-XX-{g.digits(4)} on file",
        f"Card **** **** **** {g.digits(4)} expires {g.r.randint(1, 12):02d}/{g.r.randint(26, 31)}",
        f"Visa ending in {g.digits(4)}",
        f"card {g.pick(['4111', '5500', '3782'])} XXXX XXXX {g.digits(4)}",
        f"phone (***) ***-{g.digits(4)}",
    ]),
    "invalid_iban": lambda g: g.pick([
        f"IBAN: {invalid_iban(g)}",
        f"Wire to {invalid_iban(g)} failed: checksum mismatch",
    ]),
}


def negative_docs(g):
    docs = []
    for kind in sorted(NEGATIVES):
        for k in range(NEGATIVES_PER_KIND):
            text = NEGATIVES[kind](g)
            docs.append({"id": f"neg-{kind}-{k:03d}", "group": f"negative:{kind}", "text": text, "entities": []})
    return docs


# ---- prose: throughput workload ----

PROSE_PII = [
    "Please send the contract to {email_address} by {date}.",
    "If anything breaks, call {phone_number}.",
    "The staging server is {ip_address}.",
    "Wire the deposit to IBAN {iban_code}.",
    "Her SSN is {us_ssn}.",
    "The card ending in the last group is {credit_card}.",
    "Somebody pasted {api_key} into the channel.",
    "The login uses password: {password} for now.",
    "Bearer {jwt_token} was found in the logs.",
]

PROSE_NOISE = [
    "The meeting is on {date}.",
    "Order {order} totals {price}.",
    "We upgraded to v{n}.{n}.{n} last week.",
    "See ticket {order} for details.",
    "Request {uuid} took {n} ms.",
    "Commit {sha} fixed it.",
]


def prose_docs(g):
    docs = []
    size = 0
    k = 0
    while size < PROSE_BYTES:
        doc = Doc()
        target = g.r.randint(900, 1150)
        first = True
        while len(doc.text().encode()) < target:
            if not first:
                doc.add(" ")
            first = False
            x = g.r.random()
            if x < 0.045:
                tmpl = g.pick(PROSE_PII)
            elif x < 0.11:
                tmpl = g.pick(PROSE_NOISE)
            else:
                doc.add(g.sentence())
                continue
            text, ents = fill_template(g, tmpl)
            for e in ents:
                e["start"] += doc.n
                e["end"] += doc.n
                doc.entities.append(e)
            doc.add(text)
        text = doc.text()
        # Values are left out here to keep the committed corpus small; offsets locate them.
        for e in doc.entities:
            assert text[e["start"] : e["end"]] == e["value"], e
        ents = [{"type": e["type"], "start": e["start"], "end": e["end"]} for e in doc.entities]
        docs.append({"id": f"prose-{k:04d}", "group": "prose", "text": text, "entities": ents})
        size += len(text.encode())
        k += 1
    return docs


def requests_1k(g):
    """Three request texts of 1000-1100 bytes for the engine benches: no PII (prose with dates,
    order numbers, versions, UUIDs and hashes), some PII (one sentence in six) and dense PII
    (every sentence)."""

    def build(pii_every):
        parts = []
        k = 0
        while True:
            size = len(" ".join(parts).encode())
            if pii_every and k % pii_every == pii_every - 1:
                text, _ = fill_template(g, g.pick(PROSE_PII))
            elif k % 3 == 2:
                text, _ = fill_template(g, g.pick(PROSE_NOISE))
            else:
                text = g.sentence()
            k += 1
            grown = size + 1 + len(text.encode())
            if grown <= 1100:
                parts.append(text)
                if grown >= 1000:
                    return " ".join(parts)
            # Too long for what is left (a JWT, say): draw another sentence.

    return {"none": build(0), "some": build(6), "dense": build(1)}


def check_doc(d):
    for e in d["entities"]:
        assert d["text"][e["start"] : e["end"]] == e.get("value", d["text"][e["start"] : e["end"]]), (d["id"], e)
    ends = [(e["start"], e["end"]) for e in d["entities"]]
    assert ends == sorted(ends), d["id"]
    for (_, e1), (s2, _) in zip(ends, ends[1:]):
        assert e1 <= s2, d["id"]


def dump_jsonl(docs):
    return "".join(json.dumps(d, ensure_ascii=False, separators=(",", ":")) + "\n" for d in docs)


def build_all(seed):
    g = Gen(seed)
    labeled = positive_docs(g) + negative_docs(g)
    prose = prose_docs(g)
    for d in labeled + prose:
        check_doc(d)
    reqs = requests_1k(g)
    others = others_docs(seed)
    for d in others:
        check_doc(d)
    people, heldout = people_docs(seed), heldout_docs(seed)
    for d in people + heldout:
        check_doc(d)
    return {
        "people.jsonl": dump_jsonl(people),
        "people_heldout.jsonl": dump_jsonl(heldout),
        "labeled.jsonl": dump_jsonl(labeled),
        "others.jsonl": dump_jsonl(others),
        "prose.jsonl": dump_jsonl(prose),
        "requests_1k.json": json.dumps(reqs, ensure_ascii=False, indent=1) + "\n",
    }


def main():
    # Some Faker providers draw from sets, whose order follows the string hash seed: pin it.
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONHASHSEED": "0"})
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "..", "tests", "corpus"))
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--check", action="store_true", help="verify the files in --out instead of writing them")
    args = ap.parse_args()
    if faker.VERSION != FAKER_VERSION:
        sys.exit(f"generate.py needs Faker=={FAKER_VERSION} (found {faker.VERSION}) to reproduce the corpus")
    files = build_all(args.seed)
    os.makedirs(args.out, exist_ok=True)
    stale = []
    for name, content in files.items():
        path = os.path.join(args.out, name)
        if args.check:
            try:
                with open(path, encoding="utf-8", newline="") as f:
                    if f.read() != content:
                        stale.append(name)
            except FileNotFoundError:
                stale.append(name)
        else:
            with open(path, "w", encoding="utf-8", newline="") as f:
                f.write(content)
    if stale:
        sys.exit(f"corpus differs from seed {args.seed}: {', '.join(stale)} (run scripts/corpus/generate.py)")
    total = sum(len(c.encode()) for c in files.values())
    print(f"corpus {'verified' if args.check else 'written'}: {args.out} ({total} bytes, seed {args.seed})")


if __name__ == "__main__":
    main()
