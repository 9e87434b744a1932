"""Metrics and scoring, each checked against an independent computation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from rouge_score import rouge_scorer

import amuro_tasks
from amuro_tasks.errors import AmuroConfigError
from amuro_tasks.harness import process_results_rouge
from amuro_tasks.metrics import rouge_l
from amuro_tasks.scoring import first_token_choices


def _lcs(a: list[str], b: list[str]) -> int:
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1][j + 1] = (
                table[i][j] + 1 if x == y else max(table[i][j + 1], table[i + 1][j])
            )
    return table[-1][-1]


@pytest.mark.parametrize(
    ("reference", "prediction"),
    [
        ("the cat sat on the mat", "the cat on the mat"),
        ("police arrested two men in leeds", "two men were arrested by police"),
        ("a b c d", "e f"),
    ],
)
def test_rouge_l_matches_hand_lcs_and_rouge_score(reference: str, prediction: str) -> None:
    ref, pred = reference.split(), prediction.split()
    lcs = _lcs(ref, pred)
    precision, recall = lcs / len(pred), lcs / len(ref)
    hand = 0.0 if lcs == 0 else 2 * precision * recall / (precision + recall)
    assert rouge_l(reference, prediction, use_stemmer=False) == pytest.approx(hand)
    direct = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True).score(reference, prediction)
    assert rouge_l(reference, prediction) == pytest.approx(direct["rougeL"].fmeasure)


def test_rouge_l_stems_by_default() -> None:
    assert rouge_l("cats running", "cat runs") == pytest.approx(1.0)
    assert rouge_l("cats running", "cat runs", use_stemmer=False) == pytest.approx(0.0)


def test_process_results_scores_the_stripped_generation() -> None:
    doc = {"target": "The council met on Monday."}
    out = process_results_rouge(doc, ["  The council met.\n"])
    assert out == {"rougeL": pytest.approx(rouge_l(doc["target"], "The council met."))}


def _evaluate(model_dir: Path, task: str, **metadata: object) -> dict:
    from lm_eval import simple_evaluate

    return simple_evaluate(
        model="hf",
        model_args=f"pretrained={model_dir},dtype=float32",
        tasks=[task],
        batch_size=8,
        device="cpu",
        log_samples=True,
        task_manager=amuro_tasks.task_manager(metadata={"pretrained": str(model_dir), **metadata}),
    )


def _context(sample: dict) -> str:
    """The scored context of an lm-eval sample (in memory: a list of (context, continuation))."""
    args = sample["arguments"]
    return args["gen_args_0"]["arg_0"] if isinstance(args, dict) else args[0][0]


def _first_token_logit_predictions(model_dir: Path, samples: list[dict], words: list[str]) -> list:
    """The paper's rule computed by hand: argmax of next-token logits over first sub-tokens."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    first_ids = [tok(" " + w, add_special_tokens=False)["input_ids"][0] for w in words]
    preds = []
    for sample in samples:
        context = _context(sample)
        ids = tok(context, return_tensors="pt", add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(ids).logits[0, -1]
        preds.append(int(torch.argmax(logits[first_ids])))
    return preds


@pytest.mark.slow
def test_accuracy_and_first_token_scoring_match_hand_computation(tiny_model_dir: Path) -> None:
    task = "amuro_mnli_matched_default"
    words = ["entailment", "neutral", "contradiction"]

    out = _evaluate(tiny_model_dir, task)
    samples = out["samples"][task]
    preds = [max(range(3), key=lambda i: float(s["filtered_resps"][i][0])) for s in samples]
    gold = [s["doc"]["label"] for s in samples]
    hand_acc = sum(p == g for p, g in zip(preds, gold, strict=True)) / len(samples)
    assert out["results"][task]["acc,none"] == pytest.approx(hand_acc)

    paper = _evaluate(tiny_model_dir, task, amuro_scoring="first_token")
    paper_samples = paper["samples"][task]
    lm_eval_preds = [max(range(3), key=lambda i: float(s["filtered_resps"][i][0]))
                     for s in paper_samples]
    assert lm_eval_preds == _first_token_logit_predictions(tiny_model_dir, paper_samples, words)
    gold = [s["doc"]["label"] for s in paper_samples]
    assert paper["results"][task]["acc,none"] == pytest.approx(
        sum(p == g for p, g in zip(lm_eval_preds, gold, strict=True)) / len(gold)
    )
    # shots still show the whole label word; only the scored continuation is cut
    shots = _context(paper_samples[0])
    assert any(f"Inference: {w}\n" in shots for w in words)


def test_first_token_choices_need_distinct_first_tokens(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    pieces = first_token_choices(["entailment", "neutral", "contradiction"], tok)
    for word, piece in zip(["entailment", "neutral", "contradiction"], pieces, strict=True):
        assert word.startswith(piece)
    with pytest.raises(AmuroConfigError, match="share a first sub-token"):
        first_token_choices(["yes", "yes!"], tok)


def test_first_token_scoring_needs_a_tokenizer() -> None:
    from amuro_tasks.harness import load_amuro_set

    with pytest.raises(AmuroConfigError, match="needs the model's tokenizer"):
        load_amuro_set("rte", amuro_data="fixtures", amuro_scoring="first_token")


def test_first_token_choices_with_a_sentencepiece_style_tokenizer() -> None:
    """Llama-2-style tokenizers (normalizer prepends '▁', spaces become '▁') encode ' yes' alone
    as ['▁', '▁yes']; the first piece must be the one lm-eval scores after a prompt ('▁yes'),
    not the lone '▁' (which the old code picked and then rejected)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"),
                                           normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never")
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.Fuse(),
                                     decoders.Strip(content=" ", left=1)])
    corpus = ["Answer: entailment neutral contradiction yes no"] * 20 + ["the cat sat"] * 5
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=120,
                                                        special_tokens=["<unk>"]))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")
    # The trap this test sets: the label alone starts with a lone metaspace piece.
    assert fast.convert_ids_to_tokens(fast(" yes", add_special_tokens=False)["input_ids"])[0] \
        == "▁"
    words = ["entailment", "neutral", "contradiction", "yes", "no"]
    pieces = first_token_choices(words, fast)
    stub = fast("Answer:", add_special_tokens=False)["input_ids"]
    for word, piece in zip(words, pieces, strict=True):
        assert piece and word.startswith(piece)
        whole = fast("Answer: " + word, add_special_tokens=False)["input_ids"]
        assert fast("Answer: " + piece, add_special_tokens=False)["input_ids"] == \
            stub + whole[len(stub):][:1]
