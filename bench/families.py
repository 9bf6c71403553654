"""Campaign classes beyond the first suite's shapes, and the benign look-alikes they must not catch.

Every wrapper here was written for promptsim (translations included); the slots are real prompts
from data/corpora, as in bench/corpus.py. Each class varies what a campaign operator varies:
the wording (a pool of paraphrases, synonym swaps), the language, the layout (a short wrapper,
a fixed part in the middle, several fixed parts, a structured payload with its fields reordered)
and the sending pattern (one prompt per account from fresh accounts in a burst; a slow drip).

The hard negatives are benign traffic that looks like a campaign on one signal: a team of
long-lived accounts sharing one narrow template all day, ordinary users who append "think step
by step" to their own questions, and single-account apps that run different templates over the
same passages a campaign also uses as slots.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable

Renderer = Callable[[random.Random, str], str]

# ------------------------------------------------------------------ translated instructions
# One instruction, many languages; a campaign sends each prompt in one of its languages, the slot
# stays in English (as the held-out suites do).
TRANSLATED = (
    {
        "en": "Solve the problem below. Before the final answer, write out your complete reasoning step by step, "
        "and put the final answer on the last line.",
        "de": "Löse die folgende Aufgabe. Schreibe vor der endgültigen Antwort deinen vollständigen Gedankengang "
        "Schritt für Schritt auf und setze die endgültige Antwort in die letzte Zeile.",
        "fr": "Résous le problème ci-dessous. Avant la réponse finale, écris tout ton raisonnement étape par étape, "
        "puis donne la réponse finale sur la dernière ligne.",
        "es": "Resuelve el siguiente problema. Antes de la respuesta final, escribe todo tu razonamiento paso a paso "
        "y pon la respuesta final en la última línea.",
        "zh": "请解决下面的问题。在给出最终答案之前，请一步一步地写出你完整的推理过程，并把最终答案写在最后一行。",
        "ja": "次の問題を解いてください。最終的な答えを出す前に、推論の過程を"
        "すべて一歩ずつ書き出し、最終的な答えを最後の行に書いてください。",
        "ru": "Реши задачу ниже. Перед окончательным ответом подробно, шаг за шагом, распиши весь ход своих "
        "рассуждений и напиши окончательный ответ в последней строке.",
        "pt": "Resolva o problema abaixo. Antes da resposta final, escreva todo o seu raciocínio passo a passo e "
        "coloque a resposta final na última linha.",
        "ko": "아래 문제를 풀어 주세요. 최종 답을 내기 전에 전체 추론 과"
        "정을 단계별로 작성하고, 최종 답은 마지막 줄에 적어 주세요.",
    },
    {
        "en": "You are a leading expert in this field. Give a thorough, authoritative answer to the question below "
        "and justify every claim you make.",
        "de": "Du bist ein führender Experte auf diesem Gebiet. Gib eine gründliche, fundierte Antwort auf die "
        "folgende Frage und begründe jede deiner Aussagen.",
        "fr": "Tu es un expert de premier plan dans ce domaine. Donne une réponse approfondie et faisant autorité à "
        "la question ci-dessous, et justifie chacune de tes affirmations.",
        "es": "Eres un experto destacado en este campo. Da una respuesta exhaustiva y rigurosa a la siguiente "
        "pregunta y justifica cada afirmación que hagas.",
        "zh": "你是该领域的顶尖专家。请对下面的问题给出全面而权威的回答，并为你的每一个论点提供依据。",
        "ja": "あなたはこの分野の第一人者です。次の質問に対して、徹底的"
        "で信頼できる回答をし、すべての主張に根拠を示してください。",
        "ru": "Ты ведущий эксперт в этой области. Дай исчерпывающий и авторитетный ответ на вопрос ниже и обоснуй "
        "каждое своё утверждение.",
        "it": "Sei un esperto di primo piano in questo campo. Dai una risposta approfondita e autorevole alla domanda "
        "qui sotto e giustifica ogni affermazione che fai.",
        "ko": "당신은 이 분야의 최고 전문가입니다. 아래 질문에 대해 철저"
        "하고 권위 있는 답변을 하고, 모든 주장에 근거를 제시하세요.",
    },
    {
        "en": "Answer the following task, then grade your own answer from 1 to 10 on correctness and clarity and "
        "explain each grade.",
        "de": "Bearbeite die folgende Aufgabe und bewerte anschließend deine eigene Antwort auf einer Skala von 1 "
        "bis 10 nach Richtigkeit und Klarheit; begründe jede Bewertung.",
        "fr": "Réponds à la tâche suivante, puis note ta propre réponse de 1 à 10 pour l'exactitude et la clarté, "
        "en expliquant chaque note.",
        "es": "Responde a la siguiente tarea y luego califica tu propia respuesta del 1 al 10 en corrección y "
        "claridad, explicando cada calificación.",
        "zh": "请完成下面的任务，然后从正确性和清晰度两个方面给你自己的回答打1到10分，并解释每个分数。",
        "ja": "次の課題に答えた後、自分の回答を正確さと明確さの観点から1"
        "から10で採点し、それぞれの点数の理由を説明してください。",
        "ru": "Выполни следующее задание, а затем оцени свой ответ по шкале от 1 до 10 за правильность и ясность и "
        "объясни каждую оценку.",
        "pt": "Responda à tarefa a seguir e depois avalie sua própria resposta de 1 a 10 quanto à correção e à "
        "clareza, explicando cada nota.",
        "it": "Rispondi al compito seguente, poi valuta la tua risposta da 1 a 10 per correttezza e chiarezza, "
        "spiegando ogni voto.",
    },
)

# ------------------------------------------------------------------ pools of paraphrases
# A dozen rewordings of one instruction; each prompt picks one at random and puts it before or
# after the slot.
PARAPHRASE_POOLS = (
    (
        "Work through this carefully and show every step of your reasoning before you answer.",
        "Please reason it out step by step, writing down each intermediate step, then give your answer.",
        "Show your full chain of thought, one step at a time, and only then state the answer.",
        "Walk me through your thinking in detail, step by step, before concluding.",
        "Lay out your reasoning process explicitly, step after step, and finish with the answer.",
        "Think aloud: write every step of your reasoning, then the final answer.",
        "Before answering, break the problem down and explain each step of your thought process.",
        "Give a step-by-step derivation of your answer, leaving out nothing in between.",
        "I need the complete reasoning, not just the result: go step by step and then answer.",
        "Explain how you get there, one reasoning step at a time, then state your conclusion.",
        "Detail your thought process thoroughly, each step on its own line, then answer.",
        "Reason through the following systematically, documenting each step, and end with the answer.",
    ),
    (
        "Write a model answer to this, the kind a textbook would print, with a full explanation.",
        "Give an exemplary, fully explained answer suitable for an answer key.",
        "Produce a reference-quality answer with a complete explanation of why it is right.",
        "Answer this as a perfect example response, explaining all of the reasoning behind it.",
        "Provide the ideal answer together with a thorough justification of every part.",
        "Compose a gold-standard response and explain the rationale behind each point.",
        "Respond with a polished, authoritative answer and a detailed explanation of it.",
        "Craft the best possible answer and then justify it in depth.",
        "Write the definitive answer to the following, including a full explanation.",
        "Give a complete, high-quality answer and explain the thinking that supports it.",
        "Create a flawless sample answer with an explanation a student could learn from.",
        "Deliver an expert-level answer followed by an in-depth explanation of the reasoning.",
    ),
)

# ------------------------------------------------------------------ synonym swaps
# {a|b|c} picks one per prompt; the result is then obfuscated (zero-width, homoglyphs) by the caller.
SYNONYM_TEMPLATES = (
    "{Provide|Give|Offer|Write} a {detailed|thorough|comprehensive|complete} {explanation|account|breakdown} of "
    "your {reasoning|thinking|thought process} {for|on|about} the {question|passage|item} below, {then|and then|"
    "after that} {state|give|write down} the {final answer|answer|conclusion}.",
    "{Read|Study|Examine} the {text|passage|context} and {answer|respond to|address} the {question|query} "
    "{that follows|below|after it}. {Quote|Cite|Reference} the {sentences|lines|parts} that {support|justify|back "
    "up} your {answer|response}, and {explain|describe|spell out} {each|every} {inference|deduction|step}.",
)

# ------------------------------------------------------------------ short wrappers (<= 8 words)
SHORT_WRAPPERS = (
    "Reason it through fully, then answer:",
    "Explain like an expert, step by step:",
    "Full worked solution with justification, please:",
    "Answer thoroughly and show your reasoning:",
)

# ------------------------------------------------------------------ fixed text in the middle, or in several parts
MIDDLE_WRAPPERS = (
    "\n\nUsing only the text above, answer the question below and explain, step by step, how the text supports "
    "your answer.\n\nQuestion: ",
    "\n\n---\nFirst restate the task in your own words, then solve it with numbered steps, then check your work. "
    "The task continues here:\n",
)
MULTIPART_WRAPPERS = (
    (
        "### Instruction\nYou are producing reference data. Respond with a complete, expert answer.\n### Input\n",
        "\n### Output requirements\nGive your reasoning as numbered steps and end with a one-sentence summary.",
    ),
    (
        "[SYSTEM] Respond as a meticulous senior specialist. [TASK] ",
        " [FORMAT] Reasoning first, as a numbered list; final answer last, after the word ANSWER.",
    ),
)

# ------------------------------------------------------------------ structured payloads
STRUCTURED_TASKS = (
    "Answer the input. Include every reasoning step.",
    "Act as a domain expert and produce a complete, graded answer with rationale.",
)

# ------------------------------------------------------------------ code distillation
CODE_WRAPPERS = (
    "Implement the following in Python. Write production-quality code with type hints and a comment explaining "
    "every design decision, then add unit tests.\n\n{slot}",
    "{slot}\n\nSolve this with complete, runnable code. Explain the algorithm line by line, state its time and "
    "space complexity, and list the edge cases you handled.",
)

# ------------------------------------------------------------------ burst and drip campaigns
BURST_WRAPPERS = (
    "Provide an expert answer to the following, including your complete reasoning:\n\n{slot}",
    "{slot}\n\nGive the ideal response to this, then explain step by step why it is the best possible answer.",
)
DRIP_WRAPPERS = (
    "Respond to the request below as a top specialist would, and explain each of your steps so the method can be "
    "learned from it.\n\n{slot}",
    "{slot}\n\nWrite the answer a seasoned professional would give, then add a section that teaches the method "
    "behind it, one numbered step at a time.",
)


def _zero_width_and_homoglyphs(rng: random.Random, text: str) -> str:
    """Sprinkle zero-width characters and Cyrillic look-alikes into text (normalization undoes both)."""
    swaps = {"a": "\u0430", "e": "\u0435", "o": "\u043e", "p": "\u0440", "c": "\u0441", "i": "\u0456"}
    out = []
    for ch in text:
        out.append(swaps[ch] if ch in swaps and rng.random() < 0.2 else ch)
        if ch == " " and rng.random() < 0.3:
            out.append(rng.choice("\u200b\u200c\u200d\u2060"))
    return "".join(out)


def _pick_synonyms(rng: random.Random, template: str) -> str:
    return re.sub(r"\{([^{}]*\|[^{}]*)\}", lambda m: rng.choice(m.group(1).split("|")), template)


def _split_in_two(text: str) -> tuple[str, str]:
    """The slot cut at the sentence boundary nearest its middle (or at the middle word)."""
    cuts = [m.end() for m in re.finditer(r"[.?!]\s+", text)]
    if cuts:
        cut = min(cuts, key=lambda c: abs(c - len(text) / 2))
        return text[:cut].strip(), text[cut:].strip()
    words = text.split(" ")
    return " ".join(words[: len(words) // 2]), " ".join(words[len(words) // 2 :])


def make_translated(rng: random.Random, variant: int) -> Renderer:
    """One instruction in 5-9 languages around English slots; each prompt picks a language."""
    bank = TRANSLATED[variant % len(TRANSLATED)]
    langs = sorted(bank)
    chosen = rng.sample(langs, rng.randint(5, len(langs)))

    def render(r: random.Random, slot: str) -> str:
        instruction = bank[r.choice(chosen)]
        return f"{instruction}\n\n{slot}" if r.random() < 0.7 else f"{slot}\n\n{instruction}"

    return render


def make_paraphrase_pool(rng: random.Random, variant: int) -> Renderer:
    """A dozen rewordings of one instruction, one picked per prompt, before or after the slot."""
    pool = PARAPHRASE_POOLS[variant % len(PARAPHRASE_POOLS)]

    def render(r: random.Random, slot: str) -> str:
        instruction = r.choice(pool)
        return f"{instruction}\n\n{slot}" if r.random() < 0.5 else f"{slot}\n\n{instruction}"

    return render


def make_synonym_noise(rng: random.Random, variant: int) -> Renderer:
    """An instruction with per-prompt synonym swaps plus zero-width/homoglyph noise, before a QA slot."""
    template = SYNONYM_TEMPLATES[variant % len(SYNONYM_TEMPLATES)]
    return lambda r, slot: f"{_zero_width_and_homoglyphs(r, _pick_synonyms(r, template))}\n\n{slot}"


def make_short_wrapper(rng: random.Random, variant: int) -> Renderer:
    """A wrapper of at most eight words before a long, diverse question."""
    wrapper = SHORT_WRAPPERS[variant % len(SHORT_WRAPPERS)]
    return lambda r, slot: f"{wrapper} {slot}" if r.random() < 0.5 else f"{wrapper}\n{slot}"


def make_middle_wrapper(rng: random.Random, variant: int) -> Renderer:
    """Fixed text between two halves of the slot (context, then question)."""
    middle = MIDDLE_WRAPPERS[variant % len(MIDDLE_WRAPPERS)]

    def render(r: random.Random, slot: str) -> str:
        head, tail = _split_in_two(slot)
        return f"{head}{middle}{tail}"

    return render


def make_multipart(rng: random.Random, variant: int) -> Renderer:
    """Several fixed parts: a header before the slot and requirements after it."""
    before, after = MULTIPART_WRAPPERS[variant % len(MULTIPART_WRAPPERS)]
    return lambda r, slot: f"{before}{slot}{after}"


def make_structured(rng: random.Random, variant: int) -> Renderer:
    """A JSON (even variants) or YAML (odd) payload whose fields come in a random order each time."""
    task = STRUCTURED_TASKS[variant % len(STRUCTURED_TASKS)]

    def render(r: random.Random, slot: str) -> str:
        fields = [
            ("task", task),
            ("input", slot),
            ("output_format", {"reasoning": "numbered steps", "answer": "string", "confidence": "0-1"}),
            ("request_id", f"{r.getrandbits(48):012x}"),
        ]
        r.shuffle(fields)
        if variant % 2 == 0:
            return json.dumps(dict(fields), ensure_ascii=False, indent=r.choice((None, 2)))
        return _yaml(fields)

    return render


def _yaml(fields: list[tuple[str, object]]) -> str:
    lines = []
    for key, value in fields:
        if isinstance(value, dict):
            lines.append(f"{key}:")
            lines += [f"  {k}: {v}" for k, v in value.items()]
        elif isinstance(value, str) and "\n" in value:
            lines.append(f"{key}: |")
            lines += [f"  {line}" for line in value.split("\n")]
        else:
            lines.append(f"{key}: {json.dumps(value, ensure_ascii=False)}")
    return "\n".join(lines)


def make_code_distillation(rng: random.Random, variant: int) -> Renderer:
    """Fully explained, tested code around a programming task."""
    template = CODE_WRAPPERS[variant % len(CODE_WRAPPERS)]
    return lambda r, slot: template.replace("{slot}", slot)


def make_burst(rng: random.Random, variant: int) -> Renderer:
    """One fixed wrapper; the corpus sends one prompt per fresh account, all inside a few hours."""
    template = BURST_WRAPPERS[variant % len(BURST_WRAPPERS)]
    return lambda r, slot: template.replace("{slot}", slot)


def make_drip(rng: random.Random, variant: int) -> Renderer:
    """One fixed wrapper sent slowly: the campaign spans most of the window, each account a few days."""
    template = DRIP_WRAPPERS[variant % len(DRIP_WRAPPERS)]
    return lambda r, slot: template.replace("{slot}", slot)


GENERATORS: dict[str, Callable[[random.Random, int], Renderer]] = {
    "translated": make_translated,
    "paraphrase_pool": make_paraphrase_pool,
    "synonym_noise": make_synonym_noise,
    "short_wrapper": make_short_wrapper,
    "middle_wrapper": make_middle_wrapper,
    "multipart": make_multipart,
    "structured_payload": make_structured,
    "code_distillation": make_code_distillation,
    "burst_one_per_account": make_burst,
    "slow_drip": make_drip,
}
BANKS = {
    "translated": TRANSLATED,
    "paraphrase_pool": PARAPHRASE_POOLS,
    "synonym_noise": SYNONYM_TEMPLATES,
    "short_wrapper": SHORT_WRAPPERS,
    "middle_wrapper": MIDDLE_WRAPPERS,
    "multipart": MULTIPART_WRAPPERS,
    "structured_payload": (0, 1),  # JSON and YAML
    "code_distillation": CODE_WRAPPERS,
    "burst_one_per_account": BURST_WRAPPERS,
    "slow_drip": DRIP_WRAPPERS,
}
PROFILES = {
    "translated": ("mixed", "long"),
    "paraphrase_pool": ("mixed", "long"),
    "synonym_noise": ("qa", "qa"),
    "short_wrapper": ("long", "long"),
    "middle_wrapper": ("long", "long"),
    "multipart": ("mixed", "short"),
    "structured_payload": ("mixed", "short"),
    "code_distillation": ("mixed", "mixed"),
    "burst_one_per_account": ("mixed", "mixed"),
    "slow_drip": ("mixed", "mixed"),
}

# ------------------------------------------------------------------ benign look-alikes
TEAM_TEMPLATE = (
    "Summarize this support ticket for the shift handoff log. Give: customer, product area, severity (P1-P4), "
    "what was tried, next step.\n\nTicket #{number} ({channel}):\n{ticket}"
)
_PRODUCTS = (
    "billing portal",
    "mobile app",
    "SSO login",
    "CSV export",
    "webhooks",
    "search API",
    "dashboard",
    "invoice PDFs",
    "user provisioning",
    "audit log",
    "data sync",
    "email notifications",
)
_SYMPTOMS = (
    "returns a 500 error",
    "times out after 30 seconds",
    "shows the wrong currency",
    "drops every second row",
    "logs users out at random",
    "is missing yesterday's entries",
    "sends duplicate messages",
    "rejects valid passwords",
    "loads a blank page in Safari",
    "double-charges annual plans",
    "ignores the time zone setting",
    "fails for files over 10 MB",
)
_SINCE = (
    "since this morning's release",
    "since Tuesday",
    "for about a week",
    "intermittently for a month",
    "only for EU customers",
    "after they changed plans",
    "only on Android 14",
    "since the DNS change",
)
_TRIED = (
    "cleared cache and cookies",
    "re-sent the invitation",
    "rotated the API key",
    "rolled back the config",
    "reproduced it on staging",
    "asked for a HAR file",
    "checked the status page",
    "restarted the sync job",
)
_CUSTOMERS = (
    "Acme Logistics",
    "Northwind Health",
    "Blue Harbor Bank",
    "Kestrel Games",
    "Orbital Foods",
    "Lumen Schools",
    "Tidewater Legal",
    "Pioneer Freight",
    "Quartz Retail",
    "Silverline Travel",
)
_CHANNELS = ("email", "chat", "phone", "portal")

COT_SUFFIXES = (
    "Think step by step.",
    "Let's think step by step.",
    "think step by step",
    "Please think step by step.",
    "Explain step by step.",
    "Think it through step by step before answering.",
    "Can you go step by step?",
    "step by step please",
)


def support_ticket(rng: random.Random) -> str:
    """A short, varied support ticket on the team's narrow topic."""
    customer, product = rng.choice(_CUSTOMERS), rng.choice(_PRODUCTS)
    sentences = [
        f"{customer} reports that the {product} {rng.choice(_SYMPTOMS)} {rng.choice(_SINCE)}.",
        f"Affected users: about {rng.choice((1, 3, 12, 40, 250, 1200))}.",
        f"Agent {rng.choice(('Maya', 'Omar', 'Lena', 'Kofi', 'Ines', 'Raj'))} {rng.choice(_TRIED)}"
        f" and {rng.choice(_TRIED)}.",
    ]
    if rng.random() < 0.6:
        sentences.append(
            rng.choice(
                (
                    "Customer is on the Enterprise plan and mentions a renewal next month.",
                    "No workaround found yet.",
                    "Workaround: manual export from the admin page.",
                    "Customer asked for a call back before 5pm their time.",
                    "Second report this week from this account.",
                )
            )
        )
    rng.shuffle(sentences)
    return " ".join(sentences)


# ------------------------------------------------------------------ held-out wordings
# Written after the detector was built and never used to tune it: `--suite holdout` sends one
# campaign per class with these wordings only, to see how the design does on instructions it
# has not met (seeds other than the evaluation's too).
HOLDOUT_TRANSLATED = {
    "en": "Work out the answer carefully and show the intermediate results of every stage of your analysis.",
    "de": "Erarbeite die Antwort sorgfältig und zeige die Zwischenergebnisse jeder Stufe deiner Analyse.",
    "es": "Elabora la respuesta con cuidado y muestra los resultados intermedios de cada etapa de tu análisis.",
    "zh": "请仔细推导出答案，并展示你分析过程中每个阶段的中间结果。",
    "ja": "慎重に答えを導き出し、分析の各段階の途中結果をすべて示してください。",
    "ru": "Тщательно выведи ответ и покажи промежуточные результаты каждого этапа своего анализа.",
}
HOLDOUT_POOL = (
    "Spell out your logic in full before the verdict.",
    "Don't just answer: document the whole line of argument first.",
    "Give me the argument behind the answer, every link in the chain, then the answer itself.",
    "Trace your logic from start to finish, then conclude.",
    "First the complete argument, step after step; the answer comes last.",
    "Make every inference explicit on the way to your answer.",
    "Present your analysis as a sequence of small justified steps, then the result.",
    "Show the full chain of inference that gets you to the answer.",
)
HOLDOUT_SYNONYMS = (
    "{Draft|Compose|Prepare} an {in-depth|extensive|meticulous} {answer|reply|response} to the {problem|question|task} "
    "{below|that follows}, {and|then} {justify|defend|support} {each|every} {claim|step|point} {you make|in it}."
)
HOLDOUT_SHORT = "Teach me this properly, step by step:"
HOLDOUT_MIDDLE = (
    "\n\nGiven the material above, reason carefully through the following and grade your own certainty:\n\n"
)
HOLDOUT_MULTIPART = (
    "<<GOAL>> produce an exemplary expert solution <<INPUT>> ",
    " <<STYLE>> rigorous, stepwise, sourced",
)
HOLDOUT_STRUCTURED_TASK = "Produce a best-possible answer and a step-by-step rationale for the user query."
HOLDOUT_CODE = (
    "{slot}\n\nWrite a robust solution with docstrings, explain the reasoning behind each function and include tests."
)
HOLDOUT_BURST = "{slot}\n\nAnswer this as an authority on the subject would and lay out your reasoning."
HOLDOUT_DRIP = (
    "Please provide a master-class answer to the following, with the thinking behind it made explicit.\n\n{slot}"
)
HOLDOUT_PREFIX = "Compose a reference solution that a grader could use, with every step justified.\n\n{slot}"
HOLDOUT_SUFFIX = (
    "{slot}\n\nThen critique your solution as a strict reviewer would and output an improved final version."
)
HOLDOUT_PERSONA = "As a distinguished {role}, give the definitive answer to this, justifying every choice:\n\n{slot}"
HOLDOUT_ROLES = ("epidemiologist", "tax lawyer", "site reliability engineer", "art historian", "chemist")
HOLDOUT_RUBRIC = "{slot}\n\nAfter answering, assess your answer on accuracy, depth and clarity (1-5 each) with reasons."


def _holdout(template: str) -> Callable[[random.Random, int], Renderer]:
    return lambda rng, variant: (
        lambda r, slot: template.replace("{slot}", slot) if "{slot}" in template else f"{template}\n\n{slot}"
    )


def _holdout_translated(rng: random.Random, variant: int) -> Renderer:
    return lambda r, slot: f"{HOLDOUT_TRANSLATED[r.choice(sorted(HOLDOUT_TRANSLATED))]}\n\n{slot}"


def _holdout_pool(rng: random.Random, variant: int) -> Renderer:
    return lambda r, slot: (
        f"{r.choice(HOLDOUT_POOL)}\n\n{slot}" if r.random() < 0.5 else f"{slot}\n\n{r.choice(HOLDOUT_POOL)}"
    )


def _holdout_structured(rng: random.Random, variant: int) -> Renderer:
    def render(r: random.Random, slot: str) -> str:
        fields = [
            ("goal", HOLDOUT_STRUCTURED_TASK),
            ("query", slot),
            ("respond_with", ["rationale", "answer"]),
            ("nonce", r.getrandbits(32)),
        ]
        r.shuffle(fields)
        return json.dumps(dict(fields), ensure_ascii=False)

    return render


HOLDOUT_GENERATORS: dict[str, Callable[[random.Random, int], Renderer]] = {
    "translated": _holdout_translated,
    "paraphrase_pool": _holdout_pool,
    "synonym_noise": lambda rng, v: (
        lambda r, slot: f"{_zero_width_and_homoglyphs(r, _pick_synonyms(r, HOLDOUT_SYNONYMS))}\n\n{slot}"
    ),
    "short_wrapper": lambda rng, v: lambda r, slot: f"{HOLDOUT_SHORT} {slot}",
    "middle_wrapper": lambda rng, v: (
        lambda r, slot: f"{_split_in_two(slot)[0]}{HOLDOUT_MIDDLE}{_split_in_two(slot)[1]}"
    ),
    "multipart": lambda rng, v: lambda r, slot: f"{HOLDOUT_MULTIPART[0]}{slot}{HOLDOUT_MULTIPART[1]}",
    "structured_payload": _holdout_structured,
    "code_distillation": _holdout(HOLDOUT_CODE),
    "burst_one_per_account": _holdout(HOLDOUT_BURST),
    "slow_drip": _holdout(HOLDOUT_DRIP),
    "prefix_wrapper": _holdout(HOLDOUT_PREFIX),
    "suffix_wrapper": _holdout(HOLDOUT_SUFFIX),
    "persona": lambda rng, v: (
        lambda r, slot: HOLDOUT_PERSONA.replace("{role}", r.choice(HOLDOUT_ROLES)).replace("{slot}", slot)
    ),
    "rubric_grading": _holdout(HOLDOUT_RUBRIC),
}
