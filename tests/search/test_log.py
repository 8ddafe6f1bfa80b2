"""The JSON-lines candidate log: append, reopen, torn last lines, damage."""

import json

import pytest

from unires_jax.search.log import CandidateLog, candidate_key, weights_dict


def _record(w, score):
    return {
        "image": "abc",
        "seed": 0,
        "steps": 3,
        "stage": 3,
        "run": "r",
        "quality": "q",
        "strategy": "exhaustive",
        "weights": w,
        "score": score,
        "objective": score,
    }


def test_logged_candidates_are_found_after_reopening(tmp_path):
    path = tmp_path / "logs" / "abc.jsonl"
    log = CandidateLog(path)
    log.add_image({"image": "abc", "shape": [4, 4]})
    log.add_candidates(
        [_record({"DN": -0.2, "DownLQ": 1.2}, 1.5), _record({"SR": 1.0}, 2.0)]
    )
    again = CandidateLog(path)
    key = candidate_key(
        "abc", 0, 3, 3, "r", {"DownLQ": 1.2000000001, "DN": -0.2, "BR": 0.0}
    )
    assert again.lookup(key)["score"] == 1.5
    assert (
        again.lookup(candidate_key("abc", 0, 3, 2, "r", {"SR": 1.0})) is None
    )  # other stage
    assert len(again.candidates()) == 2 and "abc" in again.images()


def test_a_torn_last_line_is_ignored_and_cut_before_the_next_append(tmp_path):
    path = tmp_path / "abc.jsonl"
    log = CandidateLog(path)
    log.add_candidates([_record({"SR": 1.0}, 2.0)])
    with open(path, "a") as f:
        f.write('{"kind": "candidate", "image": "ab')  # killed mid-write
    reopened = CandidateLog(path)
    assert reopened.torn_lines == 1 and len(reopened.candidates()) == 1
    reopened.add_candidates([_record({"DN": 1.0}, 3.0)])
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(line) for line in lines)


def test_a_damaged_line_in_the_middle_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "abc.jsonl"
    path.write_text(
        '{"kind": "image", "image": "abc"}\nnot json\n{"kind": "image", "image": "d"}\n'
    )
    with pytest.raises(ValueError, match="abc.jsonl:2"):
        CandidateLog(path)


def test_weights_dict_keeps_nonzero_rounded_weights():
    assert weights_dict([0.0, 0.2 + 1e-12, -0.0, 0.8], ["A", "B", "C", "D"]) == {
        "B": 0.2,
        "D": 0.8,
    }
