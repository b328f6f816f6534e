#!/usr/bin/env python3
"""`aiplug serve` driven by the official `openai` Python package.

A client nobody in this repository wrote checks that the gateway speaks
OpenAI's API: a chat completion, a streamed one with the usage chunk and
one without it, the stream helper that rebuilds a completion from the chunks, the models list,
and the errors the client maps to its exception classes (404, 400 from a
filter plugin, 401, 400 for a malformed body). The client is made with
max_retries=0, so an error is seen once, as the server sent it.

Usage:
    client_test.py BASE_URL [API_KEY] [options]

BASE_URL is the gateway's API root (http://HOST:PORT/v1); it and API_KEY
default to $AIPLUG_BASE_URL and $AIPLUG_API_KEY. The options say what the
gateway was set up with (defaults: those of tests/cli/serve_openai.rs).
Runs every case, printing one line each (saying, on a failure, what was
expected and what came back); exits 1 when any failed.

Needs `pip install openai` (scripts/test.sh installs it).
"""

import argparse
import os
import sys
import traceback

try:
    import openai
except ImportError:
    sys.exit("client_test.py: the openai package is missing: pip install openai (scripts/test.sh installs it)")


class Failure(Exception):
    """A check that did not hold."""


class Skip(Exception):
    """A case that does not apply to this gateway or this openai version."""


def check(condition, what):
    if not condition:
        raise Failure(what)


def expect_error(kind, call, status, code=None, message_has=()):
    """Runs `call`, which must raise `kind` with `status`, the error body's
    `code` and a message holding each of `message_has`. Returns the error."""
    try:
        result = call()
    except kind as error:
        check(error.status_code == status, f"status {error.status_code}, expected {status}")
        body = error.body
        check(
            isinstance(body, dict) and isinstance(body.get("message"), str) and isinstance(body.get("type"), str),
            f'the error body is not {{"error": {{"message", "type", "code"}}}}: {body!r}',
        )
        if code is not None:
            check(error.code == code, f"error code {error.code!r}, expected {code!r} (body {body!r})")
        for part in message_has:
            check(part in body["message"], f"the error message does not mention {part!r}: {body['message']!r}")
        return error
    except openai.APIError as error:
        raise Failure(f"raised {type(error).__name__} ({error}), expected {kind.__name__}") from None
    raise Failure(f"no error, expected {kind.__name__}; got {result!r}")


def check_usage(usage, expected, where):
    check(usage is not None, f"{where}: no usage")
    got = (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens)
    check(got == expected, f"{where}: usage (prompt, completion, total) = {got}, expected {expected}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base_url", nargs="?", default=os.environ.get("AIPLUG_BASE_URL"))
    parser.add_argument("api_key", nargs="?", default=os.environ.get("AIPLUG_API_KEY"))
    parser.add_argument("--model", default="plain", help="a model whose upstream answers whole")
    parser.add_argument("--stream-model", default="streamed", help="a model whose upstream streams")
    parser.add_argument("--content", default="Paris is the capital of France.", help="what both upstreams answer")
    parser.add_argument("--usage", default="24,6,30", help="the upstreams' usage: PROMPT,COMPLETION,TOTAL")
    parser.add_argument(
        "--reject-word",
        default="forbidden-word",
        help="a word the filter plugin rejects (empty: no filter plugin, its cases are skipped)",
    )
    parser.add_argument("--reject-plugin", default="test-behaviour", help="the id of that plugin")
    args = parser.parse_args()
    if not args.base_url or not args.api_key:
        parser.error("BASE_URL and API_KEY are required (arguments, or $AIPLUG_BASE_URL and $AIPLUG_API_KEY)")
    usage = tuple(int(n) for n in args.usage.split(","))
    question = [{"role": "user", "content": "What is the capital of France?"}]
    client = openai.OpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=0, timeout=60)

    def non_streaming():
        completion = client.chat.completions.create(model=args.model, messages=question)
        check(completion.object == "chat.completion", f"object {completion.object!r}")
        check(isinstance(completion.id, str) and completion.id, f"id {completion.id!r}")
        check(len(completion.choices) == 1, f"{len(completion.choices)} choices")
        choice = completion.choices[0]
        check(choice.message.role == "assistant", f"role {choice.message.role!r}")
        check(choice.message.content == args.content, f"content {choice.message.content!r}, expected {args.content!r}")
        check(choice.finish_reason == "stop", f"finish_reason {choice.finish_reason!r}")
        check_usage(completion.usage, usage, "completion")
        # `_request_id` is the x-request-id header (openai >= 1.35 has it).
        request_id = getattr(completion, "_request_id", "not read by this openai")
        check(request_id, "no x-request-id header")
        return f"{completion.choices[0].message.content!r}, usage {usage}, request id {request_id}"

    def streaming():
        stream = client.chat.completions.create(
            model=args.stream_model,
            messages=question,
            stream=True,
            stream_options={"include_usage": True},
        )
        content_type = stream.response.headers.get("content-type", "")
        check(content_type.startswith("text/event-stream"), f"content-type {content_type!r}")
        chunks = list(stream)
        check(chunks, "no chunks")
        for chunk in chunks:
            check(chunk.object == "chat.completion.chunk", f"chunk object {chunk.object!r}: {chunk!r}")
        *deltas, last = chunks
        check(last.choices == [], f"the last chunk is not the usage chunk (choices {last.choices!r})")
        check_usage(last.usage, usage, "the usage chunk")
        for chunk in deltas:
            check(chunk.usage is None, f"usage before the last chunk: {chunk!r}")
            check(len(chunk.choices) == 1, f"a chunk with {len(chunk.choices)} choices: {chunk!r}")
        text = "".join(c.choices[0].delta.content or "" for c in deltas)
        check(text == args.content, f"the deltas say {text!r}, expected {args.content!r}")
        finishes = [c.choices[0].finish_reason for c in deltas if c.choices[0].finish_reason]
        check(finishes == ["stop"], f"finish reasons {finishes!r}")
        return f"{len(chunks)} chunks, {text!r}, usage chunk {usage}"

    def streaming_without_usage():
        # Without stream_options.include_usage OpenAI sends no usage chunk,
        # and clients index `chunk.choices[0]` on every chunk.
        stream = client.chat.completions.create(model=args.stream_model, messages=question, stream=True)
        text = ""
        for chunk in stream:
            check(chunk.choices, f"a chunk without choices although no usage was asked for: {chunk!r}")
            check(chunk.usage is None, f"usage although none was asked for: {chunk!r}")
            text += chunk.choices[0].delta.content or ""
        check(text == args.content, f"the deltas say {text!r}, expected {args.content!r}")
        return f"{text!r}, no usage chunk"

    def stream_helper():
        # Rebuilds a ChatCompletion from the chunks, checking indexes and
        # deltas as it goes: stricter about chunk shapes than plain iteration.
        helper = getattr(client.chat.completions, "stream", None)
        if helper is None:  # openai 1.x before the helper left `beta`
            beta = getattr(client, "beta", None)
            helper = getattr(getattr(getattr(beta, "chat", None), "completions", None), "stream", None)
        if helper is None:
            raise Skip(f"openai {openai.__version__} has no chat.completions.stream")
        with helper(
            model=args.stream_model, messages=question, stream_options={"include_usage": True}
        ) as stream:
            kinds = [event.type for event in stream]
            final = stream.get_final_completion()
        check("content.done" in kinds, f"no content.done event: {kinds}")
        content = final.choices[0].message.content
        check(content == args.content, f"final content {content!r}, expected {args.content!r}")
        check(final.choices[0].finish_reason == "stop", f"finish_reason {final.choices[0].finish_reason!r}")
        check_usage(final.usage, usage, "the final completion")
        return f"final completion {content!r}"

    def models():
        page = client.models.list()
        ids = [m.id for m in page.data]
        for m in page.data:
            check(m.object == "model", f"model {m.id!r} has object {m.object!r}")
            check(isinstance(m.owned_by, str), f"model {m.id!r} has owned_by {m.owned_by!r}")
            check(isinstance(m.created, int), f"model {m.id!r} has created {m.created!r}")
        for wanted in (args.model, args.stream_model):
            check(wanted in ids, f"{wanted!r} is not listed: {ids}")
        return f"ids {ids}"

    def unknown_model():
        expect_error(
            openai.NotFoundError,
            lambda: client.chat.completions.create(model="no-such-model", messages=question),
            404,
            code="model_not_found",
            message_has=("no-such-model",),
        )
        return "NotFoundError 404 model_not_found"

    rejected = [{"role": "user", "content": f"Please say {args.reject_word}."}]

    def filter_rejects():
        if not args.reject_word:
            raise Skip("no filter plugin (--reject-word is empty)")
        error = expect_error(
            openai.BadRequestError,
            lambda: client.chat.completions.create(model=args.model, messages=rejected),
            400,
            code="plugin_rejected",
            message_has=(args.reject_plugin, args.reject_word),
        )
        return f"BadRequestError 400: {error.body['message']!r}"

    def filter_rejects_stream():
        if not args.reject_word:
            raise Skip("no filter plugin (--reject-word is empty)")

        def call():
            stream = client.chat.completions.create(model=args.stream_model, messages=rejected, stream=True)
            return list(stream)

        expect_error(openai.BadRequestError, call, 400, code="plugin_rejected", message_has=(args.reject_plugin,))
        return "BadRequestError 400 before the stream starts"

    def wrong_key():
        bad = openai.OpenAI(base_url=args.base_url, api_key=args.api_key + "-wrong", max_retries=0, timeout=60)
        expect_error(
            openai.AuthenticationError,
            lambda: bad.chat.completions.create(model=args.model, messages=question),
            401,
        )
        expect_error(openai.AuthenticationError, lambda: bad.models.list(), 401)
        return "AuthenticationError 401 (chat and models)"

    def malformed():
        # The client's types do not stop a caller; the server must.
        expect_error(
            openai.BadRequestError,
            lambda: client.chat.completions.create(model=args.model, messages="not a list"),
            400,
        )
        expect_error(
            openai.BadRequestError,
            lambda: client.chat.completions.create(
                model=args.model, messages=question, extra_body={"messages": [{"role": 7}]}
            ),
            400,
        )
        expect_error(
            openai.BadRequestError,
            lambda: client.post("/chat/completions", body={"model": args.model}, cast_to=object),
            400,
        )
        expect_error(
            openai.BadRequestError,
            lambda: client.chat.completions.create(model=args.model, messages=[]),
            400,
        )
        return "BadRequestError 400 (messages a string, a bad message, no messages, empty messages)"

    cases = [
        ("non-streaming", non_streaming),
        ("streaming", streaming),
        ("streaming without usage", streaming_without_usage),
        ("stream helper", stream_helper),
        ("models.list", models),
        ("unknown model", unknown_model),
        ("filter rejects", filter_rejects),
        ("filter rejects a stream", filter_rejects_stream),
        ("wrong API key", wrong_key),
        ("malformed request", malformed),
    ]
    print(f"openai {openai.__version__} against {args.base_url}", flush=True)
    failed = skipped = 0
    for name, case in cases:
        try:
            print(f"ok   {name}: {case()}", flush=True)
        except Skip as why:
            skipped += 1
            print(f"skip {name}: {why}", flush=True)
        except Failure as failure:
            failed += 1
            print(f"FAIL {name}: {failure}", flush=True)
        except Exception:  # an unexpected exception is a failure of that case
            failed += 1
            print(f"FAIL {name}: unexpected exception\n{traceback.format_exc()}", flush=True)
    if failed:
        print(f"{failed} of {len(cases)} cases failed", flush=True)
        return 1
    print(f"{len(cases) - skipped} cases passed, {skipped} skipped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
