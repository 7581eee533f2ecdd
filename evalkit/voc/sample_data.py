"""Synthetic e-commerce customer-feedback data with a 4-level label taxonomy (the embedded VOC task).

The data is generated, not collected: every comment is an opener, a mention of a product, one key
phrase of its leaf and a closer, with an occasional typo. Each leaf has its own key phrases, so a small
model fine-tuned on the training file can learn the labels from keywords (the demo relies on this).
Labels follow a Zipf-like long tail, a few leaves sit at depth 3 and some leaf names (``Other``) repeat
under different parents, so the hierarchical metrics have something to show.

The output depends only on ``seed`` (Python's ``random.Random``), so the committed files in
``evalkit/tasks/data/voc_sample/`` can be checked against a fresh generation::

    python -m evalkit.voc.sample_data evalkit/tasks/data/voc_sample
"""

from __future__ import annotations

import csv
import io
import random
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SEP", "SAMPLE_TAXONOMY", "SampleData", "generate_sample_data", "write_sample_data", "sample_files"]

SEP = " > "

# path -> key phrases. Phrases are unique to their leaf (no phrase is shared between leaves).
SAMPLE_TAXONOMY: dict[tuple[str, ...], tuple[str, ...]] = {
    ("Product quality", "Damaged item", "Arrived broken", "Screen cracked"): (
        "the screen was cracked",
        "the display is shattered",
        "there is a crack across the screen",
    ),
    ("Product quality", "Damaged item", "Arrived broken", "Dented casing"): (
        "the casing is dented",
        "there is a big dent on the side",
        "the metal frame is bent",
    ),
    ("Product quality", "Damaged item", "Arrived broken", "Other"): (
        "it arrived broken in pieces",
        "a part snapped off in transit",
        "it was smashed inside the box",
    ),
    ("Product quality", "Damaged item", "Packaging damage"): (
        "the outer box was crushed",
        "the packaging was torn open",
        "the parcel was soaking wet",
    ),
    ("Product quality", "Defective product", "Does not power on", "Battery failure"): (
        "the battery will not charge",
        "the battery dies within minutes",
        "the battery is swollen",
    ),
    ("Product quality", "Defective product", "Does not power on", "Power button fault"): (
        "the power button is stuck",
        "pressing the power button does nothing",
        "the on switch is loose",
    ),
    ("Product quality", "Defective product", "Malfunction", "Overheating"): (
        "it gets dangerously hot",
        "it overheats after ten minutes",
        "there is a burning smell",
    ),
    ("Product quality", "Defective product", "Malfunction", "Noisy operation"): (
        "it makes a loud rattling noise",
        "there is a constant buzzing sound",
        "it makes a grinding noise",
    ),
    ("Product quality", "Defective product", "Malfunction", "Other"): (
        "it keeps glitching randomly",
        "it stopped working properly after a week",
        "it behaves erratically",
    ),
    ("Product quality", "Not as described", "Wrong specification", "Wrong size"): (
        "the size is completely wrong",
        "it is much smaller than listed",
        "it does not match the size chart",
    ),
    ("Product quality", "Not as described", "Wrong specification", "Wrong colour"): (
        "it came in the wrong colour",
        "the colour is totally different",
        "the shade does not match the listing",
    ),
    ("Product quality", "Not as described", "Misleading photos"): (
        "it looks nothing like the photos",
        "the product pictures were misleading",
        "the images online are fake",
    ),
    ("Delivery", "Late delivery", "Courier delay", "Missed delivery window"): (
        "the courier missed the delivery window",
        "nobody came in the promised time slot",
        "the delivery slot came and went",
    ),
    ("Delivery", "Late delivery", "Courier delay", "Stuck in transit"): (
        "it has been stuck in transit for days",
        "the tracking has not moved",
        "it is sitting at the depot",
    ),
    ("Delivery", "Late delivery", "Dispatch delay", "Order not shipped"): (
        "the order still has not shipped",
        "it has not been dispatched yet",
        "it is still processing after two weeks",
    ),
    ("Delivery", "Late delivery", "Dispatch delay", "Backorder"): (
        "it is now on backorder",
        "it was backordered without warning",
        "they say stock arrives next month",
    ),
    ("Delivery", "Lost package", "Marked delivered", "Not received"): (
        "it was marked as delivered but never arrived",
        "tracking says delivered but nothing is here",
        "the delivery confirmation is false",
    ),
    ("Delivery", "Lost package", "Marked delivered", "Left at wrong address"): (
        "it was delivered to the wrong address",
        "my neighbour down the road got my parcel",
        "the photo proof shows a different house",
    ),
    ("Delivery", "Lost package", "Other"): (
        "the parcel has vanished",
        "the courier admits the package is lost",
        "the shipment disappeared",
    ),
    ("Delivery", "Courier conduct", "Driver behaviour", "Rude driver"): (
        "the delivery driver was rude",
        "the courier shouted at me",
        "the driver swore at my door",
    ),
    ("Delivery", "Courier conduct", "Driver behaviour", "Parcel thrown"): (
        "the parcel was thrown over the fence",
        "the driver tossed the box onto the drive",
        "they threw it on the doorstep",
    ),
    ("Delivery", "Courier conduct", "Delivery notice", "No delivery attempt"): (
        "there was no attempt to deliver",
        "a missed card was left without knocking",
        "the driver never rang the bell",
    ),
    ("Delivery", "Shipping cost", "Unexpected fees", "Customs charges"): (
        "I had to pay customs charges",
        "there was import duty nobody mentioned",
        "a customs fee was demanded",
    ),
    ("Delivery", "Shipping cost", "Unexpected fees", "Delivery fee too high"): (
        "the delivery fee is far too high",
        "shipping cost more than the item",
        "express postage was overpriced",
    ),
    ("Customer service", "Contact problems", "Long wait", "Phone queue"): (
        "I was on hold for an hour",
        "the phone queue never ends",
        "the hotline keeps me waiting",
    ),
    ("Customer service", "Contact problems", "Long wait", "Chat wait"): (
        "the live chat wait was endless",
        "the chat queue took forever",
        "the chatbot never handed me to a person",
    ),
    ("Customer service", "Contact problems", "No response", "Email ignored"): (
        "my emails go unanswered",
        "nobody replies to my email",
        "the support inbox ignores me",
    ),
    ("Customer service", "Contact problems", "No response", "Ticket closed"): (
        "my ticket was closed without a fix",
        "they closed my support ticket",
        "the case was marked resolved",
    ),
    ("Customer service", "Agent behaviour", "Unhelpful agent", "Scripted answers"): (
        "the agent gave copy paste answers",
        "I only got scripted replies",
        "the agent read from a script",
    ),
    ("Customer service", "Agent behaviour", "Unhelpful agent", "Wrong information"): (
        "the agent gave wrong information",
        "I was told the opposite by another agent",
        "support misinformed me about the policy",
    ),
    ("Customer service", "Agent behaviour", "Rude agent"): (
        "the service agent was rude",
        "the agent hung up on me",
        "the representative was condescending",
    ),
    ("Customer service", "Complaint handling", "Escalation", "Manager unavailable"): (
        "I asked for a manager and got nobody",
        "the supervisor never called back",
        "no manager was available",
    ),
    ("Customer service", "Complaint handling", "Escalation", "Other"): (
        "my escalation went nowhere",
        "the formal complaint was ignored",
        "the complaints team lost my case",
    ),
    ("Returns and refunds", "Refund issues", "Refund delay", "Refund not received"): (
        "the refund was never received",
        "I am still waiting for my refund",
        "the money has not come back",
    ),
    ("Returns and refunds", "Refund issues", "Refund delay", "Partial refund"): (
        "they only refunded part of it",
        "I got a partial refund",
        "the refund amount is short",
    ),
    ("Returns and refunds", "Refund issues", "Refund method", "Store credit only"): (
        "they only offered store credit",
        "I got a voucher instead of money back",
        "the refund went to a gift card",
    ),
    ("Returns and refunds", "Return process", "Return label", "Label not sent"): (
        "the return label never arrived",
        "I have no return label",
        "nobody emailed the returns label",
    ),
    ("Returns and refunds", "Return process", "Return label", "Label error"): (
        "the return label barcode is invalid",
        "the post office rejected the return label",
        "the returns label prints blank",
    ),
    ("Returns and refunds", "Return process", "Return rejected", "Outside return window"): (
        "they say I am outside the return window",
        "the thirty day limit was applied unfairly",
        "my return was refused as too late",
    ),
    ("Returns and refunds", "Return process", "Return rejected", "Item condition dispute"): (
        "they claimed the returned item was used",
        "the warehouse said my return was damaged",
        "they dispute the condition of the return",
    ),
    ("Returns and refunds", "Exchange", "Exchange delay"): (
        "the exchange is taking weeks",
        "the replacement has not been sent",
        "my swap order is stuck",
    ),
    ("Returns and refunds", "Exchange", "Other"): (
        "the exchange went wrong",
        "they exchanged it for the wrong model",
        "the exchange request is confusing",
    ),
    ("Payment and billing", "Charges", "Double charge", "Charged twice"): (
        "I was charged twice",
        "there is a duplicate charge",
        "my card was billed two times",
    ),
    ("Payment and billing", "Charges", "Unauthorised charge", "Unknown transaction"): (
        "there is a charge I do not recognise",
        "an unknown transaction appeared",
        "I never authorised this payment",
    ),
    ("Payment and billing", "Charges", "Unauthorised charge", "Subscription charge"): (
        "I was billed for a subscription I never signed up for",
        "my membership renewed without asking",
        "the trial turned into a paid plan",
    ),
    ("Payment and billing", "Payment failure", "Card declined", "Declined at checkout"): (
        "my card keeps getting declined",
        "the payment was declined at checkout",
        "the bank card is refused",
    ),
    ("Payment and billing", "Payment failure", "Payment method", "Wallet not accepted"): (
        "they do not accept paypal",
        "apple pay is not working",
        "the digital wallet option fails",
    ),
    ("Payment and billing", "Payment failure", "Payment method", "Other"): (
        "the payment options are limited",
        "bank transfer is not offered",
        "cash on delivery was removed",
    ),
    ("Payment and billing", "Pricing", "Promotions", "Discount code invalid"): (
        "the discount code did not work",
        "the promo code was rejected",
        "the coupon is not applied",
    ),
    ("Payment and billing", "Pricing", "Promotions", "Price changed"): (
        "the price went up at checkout",
        "the price changed after adding it to the basket",
        "the sale price disappeared",
    ),
    ("Payment and billing", "Pricing", "Invoice", "Missing invoice"): (
        "I never got an invoice",
        "I need a VAT receipt",
        "the invoice download is missing",
    ),
    ("Website and app", "Technical issues", "App crashes", "Crash on launch"): (
        "the app crashes when I open it",
        "the app closes on startup",
        "the app will not launch",
    ),
    ("Website and app", "Technical issues", "App crashes", "Crash at checkout"): (
        "the app crashes at checkout",
        "it freezes on the payment page",
        "the app dies when I press pay",
    ),
    ("Website and app", "Technical issues", "Website errors", "Page not loading"): (
        "the page will not load",
        "the website shows error 500",
        "the site times out",
    ),
    ("Website and app", "Technical issues", "Website errors", "Search broken"): (
        "the search returns nothing",
        "the search bar is broken",
        "search results are irrelevant",
    ),
    ("Website and app", "Account", "Login problems", "Password reset"): (
        "the password reset email never comes",
        "I cannot reset my password",
        "the reset link is expired",
    ),
    ("Website and app", "Account", "Login problems", "Locked account"): (
        "my account is locked",
        "I am locked out of my account",
        "the login is blocked after one try",
    ),
    ("Website and app", "Account", "Account data", "Delete account"): (
        "please delete my account",
        "I want my personal data removed",
        "how do I close my profile",
    ),
    ("Website and app", "Account", "Account data", "Other"): (
        "my saved addresses disappeared",
        "my order history is empty",
        "my profile details changed by themselves",
    ),
    ("Website and app", "Usability", "Navigation"): (
        "the menu is confusing",
        "it is hard to find anything on the site",
        "the layout is cluttered",
    ),
}

_OPENERS = (
    "Hi,",
    "Hello,",
    "Hey team,",
    "Good morning,",
    "To whom it may concern,",
    "Dear support,",
    "Honestly,",
    "Quick note:",
    "Ugh.",
    "Not happy.",
    "",
    "",
    "",
)
_FRAMES = (
    "I ordered {art} {noun} and {phrase}.",
    "About my {noun} order: {phrase}.",
    "With the {noun} I bought, {phrase}.",
    "My {noun} order number {num} - {phrase}.",
    "{Phrase} with the {noun}.",
    "So {phrase}, this is about the {noun}.",
)
_NOUNS = (
    "blender",
    "laptop",
    "phone",
    "jacket",
    "kettle",
    "headphones",
    "sofa",
    "watch",
    "camera",
    "lamp",
    "backpack",
    "printer",
    "tablet",
    "vacuum cleaner",
    "toaster",
    "monitor",
    "pair of shoes",
    "desk chair",
)
_CLOSERS = (
    "Please sort this out.",
    "Very disappointed.",
    "What are you going to do about it?",
    "Thanks.",
    "This is the second time.",
    "I expect a reply soon.",
    "Not impressed at all.",
    "Regards.",
    "",
    "",
    "",
)


@dataclass(frozen=True)
class SampleData:
    """Generated data: the leaf paths and the train/test rows as ``(id, text, label)`` tuples."""

    leaves: tuple[tuple[str, ...], ...]
    train: tuple[tuple[str, str, str], ...]
    test: tuple[tuple[str, str, str], ...]


def _typo(text: str, rng: random.Random) -> str:
    """Swap two neighbouring letters of one longer word (comments in the wild have typos)."""
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if len(w) > 4 and w.isalpha()]
    if not candidates:
        return text
    i = rng.choice(candidates)
    j = rng.randrange(1, len(words[i]) - 2)
    w = words[i]
    words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
    return " ".join(words)


def _comment(phrases: tuple[str, ...], rng: random.Random) -> str:
    """One comment: opener + product mention with a key phrase + closer; typos only outside the phrase."""
    phrase = rng.choice(phrases)
    noun = rng.choice(_NOUNS)
    frame = rng.choice(_FRAMES)
    opener, closer = rng.choice(_OPENERS), rng.choice(_CLOSERS)
    if rng.random() < 0.15:
        opener = _typo(opener, rng)
    if rng.random() < 0.15:
        closer = _typo(closer, rng)
    body = frame.format(
        art="an" if noun[0] in "aeiou" else "a",
        noun=noun,
        phrase=phrase,
        Phrase=phrase[0].upper() + phrase[1:],
        num=rng.randrange(10000, 99999),
    )
    if opener.endswith(",") and not body.startswith("I "):  # "Hello, about my ..." not "Hello, About my ..."
        body = body[0].lower() + body[1:]
    return " ".join(part for part in (opener, body, closer) if part)


def _zipf_weights(n: int, exponent: float) -> list[float]:
    return [1.0 / (rank + 1) ** exponent for rank in range(n)]


def generate_sample_data(
    seed: int = 0, n_train: int = 1500, n_test: int = 300, *, exponent: float = 1.1, min_train_per_leaf: int = 3
) -> SampleData:
    """Generate the synthetic VOC data, deterministically from ``seed``.

    Leaves are ranked in a seeded random order and drawn with Zipf weights ``1/rank**exponent``; every
    leaf gets at least ``min_train_per_leaf`` training rows so each class can be learnt. Test rows are
    drawn from the same distribution (rare leaves may be absent from the test file, as in real data).

    Examples
    --------
    >>> data = generate_sample_data(seed=0, n_train=200, n_test=20)
    >>> len(data.train), len(data.test), len(data.leaves) == len(SAMPLE_TAXONOMY)
    (200, 20, True)
    """
    if n_train < min_train_per_leaf * len(SAMPLE_TAXONOMY):
        raise ValueError(
            f"n_train must be at least {min_train_per_leaf * len(SAMPLE_TAXONOMY)} "
            f"(min_train_per_leaf per leaf); got {n_train}"
        )
    rng = random.Random(seed)
    leaves = sorted(SAMPLE_TAXONOMY)
    ranked = list(leaves)
    rng.shuffle(ranked)
    weights = _zipf_weights(len(ranked), exponent)
    train_labels = [leaf for leaf in ranked for _ in range(min_train_per_leaf)]
    train_labels += rng.choices(ranked, weights, k=n_train - len(train_labels))
    rng.shuffle(train_labels)
    test_labels = rng.choices(ranked, weights, k=n_test)

    def rows(labels, prefix):
        return tuple(
            (f"{prefix}{i:05d}", _comment(SAMPLE_TAXONOMY[leaf], rng), SEP.join(leaf)) for i, leaf in enumerate(labels)
        )

    return SampleData(leaves=tuple(leaves), train=rows(train_labels, "train-"), test=rows(test_labels, "test-"))


def _csv_text(rows: tuple[tuple[str, str, str], ...]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "text", "label"])
    writer.writerows(rows)
    return buffer.getvalue()


def sample_files(seed: int = 0) -> dict[str, str]:
    """The sample task's files as ``{file name: text}`` (``train.csv``, ``test.csv``, ``taxonomy.txt``)."""
    data = generate_sample_data(seed)
    return {
        "taxonomy.txt": "".join(SEP.join(leaf) + "\n" for leaf in data.leaves),
        "train.csv": _csv_text(data.train),
        "test.csv": _csv_text(data.test),
    }


def write_sample_data(out_dir: str | Path, seed: int = 0) -> list[Path]:
    """Write :func:`sample_files` into ``out_dir`` and return the paths written."""
    from .._io import atomic_write_text

    out_dir = Path(out_dir)
    written = []
    for name, text in sample_files(seed).items():
        atomic_write_text(out_dir / name, text)
        written.append(out_dir / name)
    return written


if __name__ == "__main__":  # python -m evalkit.voc.sample_data OUT_DIR
    target = sys.argv[1] if len(sys.argv) > 1 else "evalkit/tasks/data/voc_sample"
    for path in write_sample_data(target):
        print(path)
