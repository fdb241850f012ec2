"""The input of each endpoint as chat messages, whose tokens a budget reserves before the call."""

from __future__ import annotations

from llmtally.domain.inputs import input_texts, prompt_messages, response_input_messages


def test_prompts_and_embedding_inputs_become_one_text_each() -> None:
    assert input_texts("hello") == ["hello"]
    assert input_texts(["a", "b"]) == ["a", "b"]
    assert input_texts([1, 2, 3]) == ["1 2 3"]  # one token array
    assert input_texts([[1, 2], [3]]) == ["1 2", "3"]
    assert prompt_messages(["a", "b"]) == [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]


def test_a_responses_input_keeps_its_roles_and_counts_its_other_items_as_user_text() -> None:
    items = [
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": [{"type": "input_text", "text": "what is"}, {"type": "input_image"}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": '{"x": 1}'},
        {"type": "function_call_output", "call_id": "c1", "output": "42"},
        {"type": "item_reference", "id": "msg_1"},
    ]
    assert response_input_messages(items, "You answer") == [
        {"role": "system", "content": "You answer"},
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "what is "},
        {"role": "user", "content": '{"x": 1}'},
        {"role": "user", "content": "42"},
    ]
    assert response_input_messages("hi") == [{"role": "user", "content": "hi"}]
