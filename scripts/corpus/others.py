"""Text written by others (issue 14): tickets, chats, CRM notes and e-mail signatures in several
locales and languages, with phone numbers, cards and e-mail addresses drawn straight from Faker's
providers of each locale (whatever formats those providers use), some texts as they appear
escaped in JSON logs (literal `\\n`, `\\t`, `\\"`), some as JSON objects or `key=value` lines whose
field names say what the value is, and hard negatives written the same way (order numbers, dates,
ZIP codes, amounts next to the same context words).

Imported by generate.py, which writes `others.jsonl` (same schema as labeled.jsonl). Its own Faker
instances and random stream, so the other corpus files do not change with it.
"""

import datetime
import random
import re

import faker

# Locales whose Faker phone provider writes numbers as people write them. Left out, and why:
# de_DE and en_IN (`00669 074391`: a `00` international prefix with no country code),
# da_DK/en_AU (8-digit locals such as `3533 7406`, indistinguishable from any number),
# tr_TR (`258 5 178`), es_ES (`+34842 91 41 77`: country code glued to the number).
PHONE_LOCALES = [
    "en_US", "en_GB", "en_CA", "de_AT", "de_CH", "fr_FR", "fr_CH", "it_IT", "nl_NL", "pt_BR", "pt_PT",
    "pl_PL", "sv_SE", "id_ID",
]
CARD_TYPES = ["maestro", "jcb15", "jcb16", "diners", "visa13", "visa16", "visa19", "amex", "mastercard", "discover"]
DOCS = 600
NEGATIVES = 120

# {phone}, {card}, {email} are labeled; {name}, {company}, {city}, {street}, {order}, {date},
# {zip}, {amount}, {ticket} are not. Each language writes its own context words (or none).
TEMPLATES = [
    # tickets
    "Ticket #{ticket} - customer {name} called from {phone} about a double charge on card {card}.",
    "Customer says the callback number on file ({phone}) is wrong. New email: {email}",
    "[{ticket}] Refund request\nCustomer: {name}\nPhone: {phone}\nCard used: {card}\nOrder: {order}",
    "Escalated by {name}: please ring the client back on {phone} before {date}.",
    "Kunde {name} bittet um Rückruf unter {phone}. Bestellung {order} vom {date}.",
    "Le client {name} demande à être rappelé au {phone} (commande {order}).",
    "El cliente {name} pide que le llamen al {phone}; pedido {order} del {date}.",
    "Il cliente {name} chiede di essere richiamato al numero {phone}.",
    "Klant {name} wil teruggebeld worden op {phone} over bestelling {order}.",
    "Cliente {name} pediu retorno no telefone {phone}, pedido {order}.",
    # chats
    "hey its {first}, my number changed, new one is {phone}",
    "{first}: can u text me at {phone} when the parcel arrives?",
    "ok, paid with my card {card}, exp 09/28 — can you confirm?",
    "sure, reach me on {phone} or {email} 👍",
    "mi número es {phone}, escríbeme por whatsapp",
    "meine Handynummer ist {phone}, ruf einfach an",
    "mon portable : {phone} — merci !",
    # CRM notes
    "Note ({date}): spoke to {name} of {company}. Direct line {phone}. Prefers email {email}.",
    "CRM: contact {name}, tel {phone}, billing card {card}, ZIP {zip}.",
    "Lead {name} ({company}, {city}) — mobile {phone}, met at the {city} fair.",
    "Account updated: payment method changed to {card} by {name}.",
    "Kontakt: {name}, {company}, Tel. {phone}, E-Mail {email}",
    # signatures
    "Best regards,\n{name}\n{company}\n{street}, {city}\nT {phone}\n{email}",
    "Kind regards\n\n{name} | {company}\nMobile: {phone}\nEmail: {email}",
    "Mit freundlichen Grüßen\n{name}\nTel.: {phone}\n{company}",
    "Cordialement,\n{name}\nTél : {phone}\n{email}",
    "Saludos,\n{name}\nTeléfono: {phone}",
    "Cordiali saluti\n{name}\nCell. {phone}",
    "Met vriendelijke groet,\n{name}\nTelefoon: {phone}",
    "Atenciosamente,\n{name}\nTel: {phone}\n{email}",
    # field names
    '{{"name": "{name}", "phone": "{phone}", "email": "{email}"}}',
    '{{"customer": {{"mobile_number": "{phone}", "city": "{city}"}}, "order": "{order}"}}',
    '{{"payment": {{"card_number": "{card}", "amount": "{amount}"}}}}',
    "mobile_number={phone} order_id={order} zip={zip}",
    "phone: {phone}\nemail: {email}\ncard: {card}",
    "user.contact.phone = {phone}",
    # escaped (text copied out of JSON logs)
    '{{"msg": "Customer {name}\\nPhone: {phone}\\nEmail: {email}"}}',
    '"body": "Hi,\\n\\nplease call me on {phone}.\\nThanks,\\n{first}"',
    'log: \\"card\\": \\"{card}\\", \\"status\\": \\"declined\\"',
    "note=Call back\\t{phone}\\tre: order {order}",
    "text: Reply-To:\\n{email}\\n",
]

NEGATIVE_TEMPLATES = [
    "Ticket #{ticket}: customer called about order {order} placed on {date}.",
    "Please call us about invoice {order}, amount {amount}, due {date}.",
    "Phone support hours: 9:00-17:30; ticket {ticket} closed on {date}.",
    "Card payment of {amount} for order {order} (ZIP {zip}) failed on {date}.",
    '{{"order_id": "{order}", "zip": "{zip}", "date": "{date}", "amount": "{amount}"}}',
    "Kontakt zu Bestellung {order} vom {date}, PLZ {zip}.",
    "Appelez le service client pour la commande {order} du {date}.",
    "order_id={order} zip={zip} created={date} total={amount}",
    "Tel. Sprechstunde {date}, Ticket {ticket}, Betrag {amount}",
    "mobile app build {version} released on {date}; call notes in ticket {ticket}",
]


class Others:
    def __init__(self, seed):
        self.r = random.Random(seed)
        self.last_ext = ""
        self.fk = {}
        for k, loc in enumerate(PHONE_LOCALES + ["es_ES", "de_DE"]):
            f = faker.Faker(loc)
            f.seed_instance(seed + k)
            self.fk[loc] = f

    def pick(self, seq):
        return seq[self.r.randrange(len(seq))]

    def f(self):
        return self.fk[self.pick(list(self.fk))]

    def order(self):
        return self.pick([
            f"{self.r.randint(10**7, 10**8 - 1)}",
            f"ORD-{self.r.randint(2023, 2026)}-{self.r.randint(0, 999999):06d}",
            f"{self.r.randint(100, 999)}-{self.r.randint(1000000, 9999999)}-{self.r.randint(1000000, 9999999)}",
            f"#{self.r.randint(100000, 999999)}",
            f"{self.r.randint(10**11, 10**12 - 1)}",
            f"0{self.r.randint(10**8, 10**9 - 1)}",
        ])

    def date(self):
        d = self.fk["en_US"].date_between_dates(datetime.date(2023, 1, 1), datetime.date(2026, 12, 31))
        return self.pick([d.isoformat(), d.strftime("%d.%m.%Y"), d.strftime("%d/%m/%Y"), d.strftime("%m/%d/%Y"),
                          d.strftime("%d.%m.%Y") + f" {self.r.randint(8, 18)}:{self.pick(['00', '15', '30'])}"])

    def fill(self, slot, loc):
        f = self.fk[loc]
        return {
            "name": f.name,
            "first": f.first_name,
            "company": f.company,
            "city": f.city,
            "street": f.street_address,
            "order": self.order,
            "date": self.date,
            "zip": f.postcode,
            "amount": lambda: self.pick(["€", "$", "£", ""]) + f"{self.r.randint(1, 99999) / 100:.2f}",
            "ticket": lambda: str(self.r.randint(10000, 999999)),
            "version": lambda: f"{self.r.randint(0, 9)}.{self.r.randint(0, 40)}.{self.r.randint(0, 400)}",
        }[slot]()

    def value(self, slot, loc):
        if slot == "phone":
            # A spaced extension (`x150`) is labeled outside the number, as in labeled.jsonl.
            number = self.fk[loc].phone_number()
            m = re.search(r" x\d+$", number)
            self.last_ext = m.group(0) if m else ""
            return "phone_number", number[: m.start()] if m else number
        if slot == "card":
            return "credit_card", self.fk["en_US"].credit_card_number(self.pick(CARD_TYPES))
        return "email_address", self.fk[loc].email()

    def doc(self, template, loc):
        text, ents = "", []
        for part in re.split(r"(\{\{|\}\}|\{[a-z]+\})", template):
            if part in ("{{", "}}"):
                text += part[0]
            elif part.startswith("{") and part.endswith("}"):
                slot = part[1:-1]
                if slot in ("phone", "card", "email"):
                    kind, v = self.value(slot, loc)
                    ents.append({"type": kind, "start": len(text), "end": len(text) + len(v), "value": v})
                    text += v
                    if kind == "phone_number" and self.last_ext:
                        text += self.last_ext
                else:
                    text += self.fill(slot, loc)
            else:
                text += part
        return text, ents


def others_docs(seed):
    o = Others(seed + 7919)
    docs = []
    for k in range(DOCS):
        loc = PHONE_LOCALES[k % len(PHONE_LOCALES)]
        text, ents = o.doc(o.pick(TEMPLATES), loc)
        docs.append({"id": f"others-{k:04d}", "group": "others", "text": text, "entities": ents})
    for k in range(NEGATIVES):
        loc = PHONE_LOCALES[k % len(PHONE_LOCALES)]
        text, ents = o.doc(o.pick(NEGATIVE_TEMPLATES), loc)
        assert not ents
        docs.append({"id": f"others-neg-{k:03d}", "group": "negative:others", "text": text, "entities": []})
    return docs
