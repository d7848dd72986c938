"""Person names and street addresses (issue 14): tickets, chats, CRM notes, letters and
signatures in English, German, French, Spanish, Italian, Dutch and Portuguese, with names and
addresses straight from Faker's providers of each locale, plus hard negatives written the same way
(capitalized words that are not names: products, places, organisations, headings, labels; numbers
before capitalized words that are not addresses).

Imported by generate.py, which writes:
  people.jsonl          the quality-gate corpus (Faker names of nine locales, addresses of eleven)
  people_heldout.jsonl  names the detector's gazetteers do not hold: (a) the census names held
                        out of the tables (gazetteer.py), group "heldout:census"; (b) names of
                        other origins (Faker's Polish, Turkish, Vietnamese, Indonesian, Finnish,
                        Hungarian, Czech, Yoruba, Zulu, Indian-English, romanized Japanese and
                        Chinese providers), group "heldout:origin". Scored and reported, not gated.

Labels: a name is labeled without its title (`Mr.`, `Dr.`, `Frau`); an address is labeled as the
provider wrote it (street, unit, and city/postcode when the template has them).
"""

import random
import re

import faker

from gazetteer import held_out

NAME_LOCALES = ["en_US", "en_GB", "en_CA", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pt_BR"]
ADDRESS_LOCALES = ["en_US", "en_CA", "en_GB", "en_AU", "de_DE", "de_AT", "de_CH", "nl_NL", "fr_FR", "es_ES",
                   "it_IT", "pt_PT"]
# Latin-script providers whose names come from outside the US census lists.
ORIGIN_LOCALES = ["pl_PL", "tr_TR", "vi_VN", "id_ID", "fi_FI", "hu_HU", "cs_CZ", "yo_NG", "zu_ZA", "en_IN", "ja_JP",
                  "zh_CN"]
PERSON_DOCS = 700
ADDRESS_DOCS = 500
NEGATIVES = 200
HELDOUT_DOCS = 300

# {person} = "First Last", {first} = a first name, {last} = a surname after a title: all labeled
# person. {address} is labeled street_address. {company}, {city}, {ticket}, {date}, {product} are not.
PERSON_TEMPLATES = [
    "Hi {first},\n\nthanks for reaching out. We have reset your password.",
    "Dear Mr. {last},\nyour order has shipped.",
    "Dear Ms. {last}, thank you for your patience.",
    "Dear {person},\n\nplease find attached the invoice for November.",
    "Ticket #{ticket}: {person} reports that the app crashes on login.",
    "Customer: {person}\nIssue: refund not received\nPriority: high",
    "My name is {person} and I was charged twice for the same order.",
    "Hello, this is {person}. I cannot log in since yesterday.",
    "Spoke with {person} about the renewal; they want a quote by {date}.",
    "Assigned to {person} (L2 support).",
    "Best regards,\n{person}\nAccount Manager, {company}",
    "Kind regards\n{person}",
    "Thanks,\n{person}",
    "Cheers,\n{first}",
    "Mit freundlichen Grüßen\n{person}",
    "Sehr geehrte Frau {last},\nvielen Dank für Ihre Nachricht.",
    "Sehr geehrter Herr {last}, anbei die Rechnung.",
    "Kunde {person} hat wegen der Lieferung angerufen.",
    "Cordialement,\n{person}",
    "Bonjour Madame {last}, votre commande est prête.",
    "Le client {person} demande un remboursement.",
    "Saludos,\n{person}",
    "Estimado Sr. {last}: le escribimos por su pedido.",
    "El cliente {person} solicita la devolución del importe.",
    "Cordiali saluti\n{person}",
    "Gentile Sig. {last}, la sua pratica è stata chiusa.",
    "Il cliente {person} ha chiamato per la fattura.",
    "Met vriendelijke groet,\n{person}",
    "Klant {person} belde over de factuur van {date}.",
    "Atenciosamente,\n{person}",
    "O cliente {person} pediu reembolso.",
    "{person} wrote: can we move the call to Friday?",
    "CRM note ({date}): {person} called about the invoice, wants a callback.",
    '{{"name": "{person}", "plan": "pro", "seats": 5}}',
    "customer_name={person} status=active plan=basic",
    "Patient {person}, seen by Dr. {last} on {date}.",
    "Please forward this to {person} in accounting.",
    "agent {first} joined the chat",
    "[{date}] escalated by {person}: customer still waiting",
    "Meeting notes: {person} and {person} agreed to ship the fix next sprint.",
    "Approved by: {person}",
    "Contact person: {person}, {company}",
    "I'm {first}, the new account owner.",
]

ADDRESS_TEMPLATES = [
    "Ship to: {address}",
    "Please send the replacement to {address}.",
    "Billing address: {address}",
    "New address on file: {address}",
    '{{"shipping_address": "{address}", "express": true}}',
    "I live at {address}, can you send a technician?",
    "Lieferadresse: {address}",
    "Bitte schicken Sie die Unterlagen an {address}.",
    "Adresse de livraison : {address}",
    "Dirección de envío: {address}",
    "Indirizzo di spedizione: {address}",
    "Afleveradres: {address}",
    "Morada: {address}",
    "Best regards,\n{person}\n{address}",
    "Return label created for {address} on {date}.",
]

NEGATIVE_TEMPLATES = [
    "Dear Customer,\n\nyour subscription renews on {date}.",
    "Hi team, the {product} rollout is done. Thanks!",
    "Order Status: Shipped\nCarrier: DHL Express\nTracking: see portal",
    "We are moving the office to San Francisco next Monday.",
    "Welcome to {product} Premium! Your free trial ends in 14 days.",
    "Release Notes for Version {version}: Bug Fixes and Performance Improvements",
    "Chapter 12 Summary: Supply Chain Management",
    "Please join the call in Microsoft Teams or Google Meet.",
    "Thank You for Your Order",
    "Room 101 is booked for the Quarterly Business Review.",
    "Take Route 66 and then Highway 1 north for 20 miles.",
    "Our New York and London offices are closed on Good Friday.",
    "The menu has 3 Main Courses and 2 Desserts.",
    "Visit the Apple Store or Best Buy for a replacement.",
    "Section 4 Street Lighting and Section 5 Road Markings are attached.",
    "Happy New Year from the Customer Success Team!",
    "Kind regards,\nThe Support Team",
    "Sehr geehrte Damen und Herren,\nvielen Dank für Ihre Bestellung.",
    "Cordialement,\nLe Service Client",
    "Top 10 Best Places to Visit in Europe",
    "Windows Update KB{ticket} failed with Error 0x80070005.",
    "Invoice Date: {date}\nDue Date: {date}\nPayment Terms: Net 30",
    "Meeting with Product Management and Sales Operations on Tuesday.",
    "Flight BA 117 from London Heathrow Terminal 5 at {time}.",
    "We sold 250 Apple Watch units and 40 Samsung Galaxy phones.",
    "Step 2 North Tower Entrance, then take Elevator B to Level 3.",
    "{city} is the capital of the region.",
    "Estimated Delivery: Wednesday, between 9 AM and 5 PM.",
    "Amazon Prime Day deals end at midnight.",
    "Bank of America and Wells Fargo reported earnings.",
]


class People:
    def __init__(self, seed):
        self.r = random.Random(seed)
        self.fk = {}
        for k, loc in enumerate(sorted(set(NAME_LOCALES + ADDRESS_LOCALES + ORIGIN_LOCALES))):
            f = faker.Faker(loc)
            f.seed_instance(seed + k)
            self.fk[loc] = f
        self.held_first, self.held_last = held_out()

    def pick(self, seq):
        return seq[self.r.randrange(len(seq))]

    def names(self, loc, origin):
        """(first, last) from a locale, the held-out census slice, or another origin."""
        if origin == "census":
            return self.pick(self.held_first), self.pick(self.held_last)
        f = self.fk[loc]
        if loc in ("ja_JP", "zh_CN"):
            return f.first_romanized_name(), f.last_romanized_name()
        return f.first_name(), f.last_name()

    def address(self, loc):
        f = self.fk[loc]
        for _ in range(50):
            full = self.r.random() < 0.5
            if loc == "en_GB":
                a = f"{f.building_number()} {f.street_name()}"
                if full:
                    a += self.pick([", ", "\n"]) + f"{f.city()}" + self.pick([", ", "\n"]) + f.postcode()
            elif loc == "nl_NL":
                a = f.street_address()
                if full:
                    a += f", {f.postcode()} {f.city()}"
            else:
                a = (f.address() if full else f.street_address()).strip()
                if full:
                    a = a.replace("\n", self.pick([", ", "\n"]))
            # Provider formats no person writes before a street are left out: en_AU `Level 3 ...`,
            # `Apt. 915 12 ...`; fr_FR streets without a number.
            if re.match(r"^(Apt|Flat|Suite|Unit|Level|Studio)\b", a) or (loc == "fr_FR" and not a[0].isdigit()):
                continue
            return a
        raise RuntimeError(f"no address for {loc}")

    def fill(self, slot, loc):
        return {
            "company": lambda: self.fk[loc].company(),
            "city": lambda: self.fk[loc].city(),
            "ticket": lambda: str(self.r.randint(10000, 999999)),
            "date": lambda: self.pick(["2025-03-14", "14.03.2025", "03/14/2025", "March 14", "14 mars"]),
            "product": lambda: self.pick(["Acme Cloud", "Nimbus", "Orbit CRM", "Pulse Analytics", "Atlas"]),
            "version": lambda: f"{self.r.randint(1, 9)}.{self.r.randint(0, 20)}",
            "time": lambda: f"{self.r.randint(6, 22)}:{self.pick(['05', '30', '45'])}",
        }[slot]()

    def doc(self, template, loc, origin=None, escape=False):
        text, ents = "", []
        for part in re.split(r"(\{\{|\}\}|\{[a-z_]+\})", template):
            if part in ("{{", "}}"):
                text += part[0]
                continue
            if not (part.startswith("{") and part.endswith("}")):
                text += part
                continue
            slot = part[1:-1]
            if slot in ("person", "first", "last"):
                first, last = self.names(loc, origin)
                v = {"person": f"{first} {last}", "first": first, "last": last}[slot]
                kind = "person"
            elif slot == "address":
                v, kind = self.address(loc), "street_address"
                if escape:
                    v = v.replace("\n", "\\n")
            else:
                text += self.fill(slot, loc)
                continue
            ents.append({"type": kind, "start": len(text), "end": len(text) + len(v), "value": v})
            text += v
        return text, ents


def people_docs(seed):
    p = People(seed + 4481)
    docs = []
    for k in range(PERSON_DOCS):
        loc = NAME_LOCALES[k % len(NAME_LOCALES)]
        text, ents = p.doc(p.pick(PERSON_TEMPLATES), loc)
        docs.append({"id": f"people-{k:04d}", "group": "person", "text": text, "entities": ents})
    for k in range(ADDRESS_DOCS):
        loc = ADDRESS_LOCALES[k % len(ADDRESS_LOCALES)]
        t = p.pick(ADDRESS_TEMPLATES)
        text, ents = p.doc(t, loc, escape=t.startswith("{{"))
        docs.append({"id": f"address-{k:04d}", "group": "street_address", "text": text, "entities": ents})
    for k in range(NEGATIVES):
        loc = NAME_LOCALES[k % len(NAME_LOCALES)]
        text, ents = p.doc(p.pick(NEGATIVE_TEMPLATES), loc)
        assert not ents
        docs.append({"id": f"people-neg-{k:03d}", "group": "negative:people", "text": text, "entities": []})
    return docs


def heldout_docs(seed):
    p = People(seed + 7607)
    docs = []
    for k in range(HELDOUT_DOCS):
        text, ents = p.doc(p.pick(PERSON_TEMPLATES), "en_US", origin="census")
        docs.append({"id": f"heldout-census-{k:04d}", "group": "heldout:census", "text": text, "entities": ents})
    for k in range(HELDOUT_DOCS):
        loc = ORIGIN_LOCALES[k % len(ORIGIN_LOCALES)]
        text, ents = p.doc(p.pick(PERSON_TEMPLATES), loc, origin="origin")
        docs.append({"id": f"heldout-origin-{k:04d}", "group": "heldout:origin", "text": text, "entities": ents})
    return docs
