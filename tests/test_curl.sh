#!/usr/bin/env bash
# Regression suite for a running llm-scope gateway, using nothing but curl (and python3 for JSON checks).
#
#   bash tests/test_curl.sh [BASE_URL]        default http://127.0.0.1:8000
#
# Uses the built-in mock models (always present). If the gateway lists a model named `gpt-fake`, one
# passthrough call to it is made too. Set LLM_SCOPE_MASTER_KEY to call a gateway that requires a key,
# and PYTHON to pick the interpreter used for JSON checks (default python3).
# Prints PASS/FAIL per case, then "N passed, M failed"; exits 1 if anything failed.

set -u

BASE_URL="${1:-http://127.0.0.1:8000}"
BASE_URL="${BASE_URL%/}"
PY="${PYTHON:-python3}"
AUTH=()
if [ -n "${LLM_SCOPE_MASTER_KEY:-}" ]; then
    AUTH=(-H "Authorization: Bearer ${LLM_SCOPE_MASTER_KEY}")
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
BODY="$WORK/body"
HEAD="$WORK/headers"

PASSED=0
FAILED=0
SKIPPED=0
STATUS=""
CASE=""
WHY=""

# request METHOD PATH [curl args...]: fills $STATUS, $BODY and $HEAD.
request() {
    local method="$1" path="$2"
    shift 2
    : >"$BODY"
    : >"$HEAD"
    STATUS="$(curl -sS --max-time 30 -X "$method" -o "$BODY" -D "$HEAD" -w '%{http_code}' \
        ${AUTH[@]+"${AUTH[@]}"} "$@" "$BASE_URL$path" 2>"$WORK/curl.err")" || STATUS="curl-error: $(cat "$WORK/curl.err")"
}

post_json() {
    local path="$1" data="$2"
    shift 2
    request POST "$path" -H "Content-Type: application/json" --data-binary "$data" "$@"
}

# json EXPR: evaluate a Python expression over the response body, bound to `d`; prints the result.
json() {
    "$PY" -c 'import json, sys
d = json.load(open(sys.argv[1], encoding="utf-8"))
print(eval(sys.argv[2], {"d": d, "json": json}))' "$BODY" "$1" 2>/dev/null
}

header() {
    grep -i "^$1:" "$HEAD" | head -n 1 | sed -e 's/^[^:]*:[[:space:]]*//' -e 's/[[:space:]]*$//'
}

begin() {
    CASE="$1"
    WHY=""
}

check() {
    # check DESCRIPTION ACTUAL EXPECTED
    if [ "$2" != "$3" ]; then
        WHY="${WHY}${WHY:+; }$1: expected [$3], got [$2]"
    fi
}

check_status() {
    check "status" "$STATUS" "$1"
}

check_contains() {
    # check_contains DESCRIPTION NEEDLE (in the body)
    if ! grep -qF -- "$2" "$BODY"; then
        WHY="${WHY}${WHY:+; }$1: body lacks [$2]"
    fi
}

check_trace_headers() {
    local trace duration
    trace="$(header x-trace-id)"
    duration="$(header x-duration-ms)"
    if ! printf '%s' "$trace" | grep -Eq '^[0-9a-f]{32}$'; then
        WHY="${WHY}${WHY:+; }X-Trace-ID not 32 hex: [$trace]"
    fi
    if ! printf '%s' "$duration" | grep -Eq '^[0-9]+(\.[0-9]+)?$'; then
        WHY="${WHY}${WHY:+; }X-Duration-Ms not a number: [$duration]"
    fi
}

end() {
    if [ -z "$WHY" ]; then
        PASSED=$((PASSED + 1))
        echo "PASS  $CASE"
    else
        FAILED=$((FAILED + 1))
        echo "FAIL  $CASE: $WHY"
        echo "      status $STATUS, body: $(head -c 400 "$BODY" | tr '\n' ' ')"
    fi
}

skip() {
    SKIPPED=$((SKIPPED + 1))
    echo "SKIP  $1"
}

# check_error STATUS CODE PARAM: an OpenAI-shaped error body ("None" = null param).
check_error() {
    check_status "$1"
    check "error.code" "$(json 'd["error"]["code"]')" "$2"
    check "error.param" "$(json 'd["error"]["param"]')" "$3"
    check "error.message non-empty" "$(json 'bool(d["error"]["message"])')" "True"
    check "error.type non-empty" "$(json 'bool(d["error"]["type"])')" "True"
    check_trace_headers
}

USER_MSG='[{"role":"user","content":"hello from curl"}]'
TOOLS='[{"type":"function","function":{"name":"get_weather","description":"weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]'

echo "llm-scope curl regression suite against $BASE_URL"

begin "GET /health is 200 healthy"
request GET /health
check_status 200
check "status field" "$(json 'd["status"]')" "healthy"
end

begin "GET /ready is 200 ready"
request GET /ready
check_status 200
check "status field" "$(json 'd["status"]')" "ready"
end

begin "GET /v1/models lists mock-gpt"
request GET /v1/models
check_status 200
check "object" "$(json 'd["object"]')" "list"
check "mock-gpt listed" "$(json '"mock-gpt" in [m["id"] for m in d["data"]]')" "True"
check "mock/echo listed" "$(json '"mock/echo" in [m["id"] for m in d["data"]]')" "True"
end
HAS_GPT_FAKE="$(json '"gpt-fake" in [m["id"] for m in d["data"]]')"

begin "GET /models (no /v1) lists mock-gpt"
request GET /models
check_status 200
check "mock-gpt listed" "$(json '"mock-gpt" in [m["id"] for m in d["data"]]')" "True"
end

begin "chat non-stream with mock-gpt"
post_json /v1/chat/completions "{\"model\":\"mock-gpt\",\"messages\":$USER_MSG}"
check_status 200
check "content-type" "$(header content-type | cut -d';' -f1)" "application/json"
check "object" "$(json 'd["object"]')" "chat.completion"
check "role" "$(json 'd["choices"][0]["message"]["role"]')" "assistant"
check "echoes the prompt" "$(json '"hello from curl" in d["choices"][0]["message"]["content"]')" "True"
check "finish_reason" "$(json 'd["choices"][0]["finish_reason"]')" "stop"
check "usage adds up" "$(json 'd["usage"]["prompt_tokens"] + d["usage"]["completion_tokens"] == d["usage"]["total_tokens"] > 0')" "True"
check_trace_headers
end

begin "chat stream with mock/echo ends with data: [DONE]"
post_json /v1/chat/completions "{\"model\":\"mock/echo\",\"stream\":true,\"messages\":$USER_MSG}" -N
check_status 200
check "content-type" "$(header content-type | cut -d';' -f1)" "text/event-stream"
check "last data line" "$(grep '^data: ' "$BODY" | tail -n 1 | tr -d '\r')" "data: [DONE]"
check "several chunks" "$([ "$(grep -c '^data: {' "$BODY")" -ge 3 ] && echo yes)" "yes"
STREAMED="$(grep '^data: {' "$BODY" | sed 's/^data: //' | "$PY" -c 'import json, sys
print("".join((json.loads(l)["choices"] or [{}])[0].get("delta", {}).get("content") or "" for l in sys.stdin))')"
check "streamed text echoes the prompt" "$(printf '%s' "$STREAMED" | grep -c 'hello from curl')" "1"
check "no usage unless asked" "$(grep -c '"usage"' "$BODY")" "0"
check_trace_headers
end

begin "chat stream with include_usage ends with a usage chunk"
post_json /v1/chat/completions \
    "{\"model\":\"mock-gpt\",\"stream\":true,\"stream_options\":{\"include_usage\":true},\"messages\":$USER_MSG}" -N
check_status 200
LAST_CHUNK="$(grep '^data: {' "$BODY" | tail -n 1 | sed 's/^data: //')"
check "usage in last chunk" "$(printf '%s' "$LAST_CHUNK" | "$PY" -c 'import json, sys
print(json.load(sys.stdin)["usage"]["total_tokens"] > 0)' 2>/dev/null)" "True"
check "last data line" "$(grep '^data: ' "$BODY" | tail -n 1 | tr -d '\r')" "data: [DONE]"
end

begin "POST /chat/completions alias (no /v1)"
post_json /chat/completions "{\"model\":\"mock-gpt\",\"messages\":$USER_MSG}"
check_status 200
check "object" "$(json 'd["object"]')" "chat.completion"
check_trace_headers
end

begin "X-Trace-ID is fresh per request"
request GET /health
FIRST_TRACE="$(header x-trace-id)"
request GET /health
check_trace_headers
if [ "$FIRST_TRACE" = "$(header x-trace-id)" ]; then WHY="same trace id twice: $FIRST_TRACE"; fi
end

begin "X-User-ID and X-Session-ID headers are accepted"
post_json /v1/chat/completions "{\"model\":\"mock-gpt\",\"messages\":$USER_MSG}" \
    -H "X-User-ID: curl-user" -H "X-Session-ID: curl-session-1"
check_status 200
check "object" "$(json 'd["object"]')" "chat.completion"
end

begin "\"metadata\": null is accepted"
post_json /v1/chat/completions "{\"model\":\"mock-gpt\",\"metadata\":null,\"messages\":$USER_MSG}"
check_status 200
check "object" "$(json 'd["object"]')" "chat.completion"
end

begin "metadata object with user and session is accepted"
post_json /v1/chat/completions \
    "{\"model\":\"mock-gpt\",\"metadata\":{\"user_id\":\"u\",\"session_id\":\"s\",\"tags\":[\"a\"]},\"messages\":$USER_MSG}"
check_status 200
end

begin "invalid JSON is 400 invalid_json"
post_json /v1/chat/completions '{"model": "mock-gpt", "messages": [' 
check_error 400 invalid_json None
end

begin "empty body is 400 invalid_json"
request POST /v1/chat/completions -H "Content-Type: application/json"
check_error 400 invalid_json None
end

begin "missing model is 400 with param model"
post_json /v1/chat/completions "{\"messages\":$USER_MSG}"
check_error 400 missing_required_parameter model
end

begin "missing messages is 400 with param messages"
post_json /v1/chat/completions '{"model":"mock-gpt"}'
check_error 400 missing_required_parameter messages
end

begin "messages of the wrong type is 400 with param messages"
post_json /v1/chat/completions '{"model":"mock-gpt","messages":"hi"}'
check_error 400 invalid_type messages
end

begin "unknown model is 404 model_not_found (with trace headers)"
post_json /v1/chat/completions "{\"model\":\"no-such-model-xyz\",\"messages\":$USER_MSG}"
check_error 404 model_not_found model
check_contains "names the model" "no-such-model-xyz"
end

begin "unknown model while streaming is still a plain 404"
post_json /v1/chat/completions "{\"model\":\"no-such-model-xyz\",\"stream\":true,\"messages\":$USER_MSG}"
check_error 404 model_not_found model
end

begin "GET on the chat route is 405"
request GET /v1/chat/completions
check_error 405 method_not_allowed None
end

begin "unknown path is a 404 JSON error"
request GET /v1/definitely-not-a-route
check_error 404 not_found None
check "content-type" "$(header content-type | cut -d';' -f1)" "application/json"
end

begin "tool call with mock-gpt when tools are given"
post_json /v1/chat/completions "{\"model\":\"mock-gpt\",\"messages\":$USER_MSG,\"tools\":$TOOLS}"
check_status 200
check "finish_reason" "$(json 'd["choices"][0]["finish_reason"]')" "tool_calls"
check "tool name" "$(json 'd["choices"][0]["message"]["tool_calls"][0]["function"]["name"]')" "get_weather"
check "arguments are JSON" "$(json 'sorted(json.loads(d["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]))' | tr -d "'")" "[city]"
end

begin "streamed tool call with mock-gpt"
post_json /v1/chat/completions "{\"model\":\"mock-gpt\",\"stream\":true,\"messages\":$USER_MSG,\"tools\":$TOOLS}" -N
check_status 200
check "finish_reason tool_calls" "$(grep -c '"finish_reason":"tool_calls"' "$BODY")" "1"
check "last data line" "$(grep '^data: ' "$BODY" | tail -n 1 | tr -d '\r')" "data: [DONE]"
end

begin "tool result turn gets a text answer"
post_json /v1/chat/completions "{\"model\":\"mock-gpt\",\"tools\":$TOOLS,\"messages\":[{\"role\":\"user\",\"content\":\"weather?\"},{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"{}\"}}]},{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"sunny\"}]}"
check_status 200
check "finish_reason" "$(json 'd["choices"][0]["finish_reason"]')" "stop"
check_contains "uses the tool result" "sunny"
end

if [ "$HAS_GPT_FAKE" = "True" ]; then
    begin "passthrough to gpt-fake (non-stream)"
    post_json /v1/chat/completions "{\"model\":\"gpt-fake\",\"messages\":$USER_MSG}"
    check_status 200
    check "object" "$(json 'd["object"]')" "chat.completion"
    check "has content" "$(json 'bool(d["choices"][0]["message"]["content"])')" "True"
    check "usage" "$(json 'd["usage"]["total_tokens"] > 0')" "True"
    check_trace_headers
    end

    begin "passthrough to gpt-fake (stream)"
    post_json /v1/chat/completions "{\"model\":\"gpt-fake\",\"stream\":true,\"messages\":$USER_MSG}" -N
    check_status 200
    check "last data line" "$(grep '^data: ' "$BODY" | tail -n 1 | tr -d '\r')" "data: [DONE]"
    check "no usage unless asked" "$(grep -c '"usage"' "$BODY")" "0"
    end
else
    skip "passthrough to gpt-fake: not listed in /v1/models"
fi

if [ "$SKIPPED" -gt 0 ]; then
    echo "$SKIPPED skipped"
fi
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
