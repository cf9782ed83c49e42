"""The kubo RPC client's HTTP mechanics, against a scripted server on 127.0.0.1.

Covers plugins/module_utils/kubo.py: how requests are built (POST, path,
repeated ``arg``, options, multipart files, multibase topics, headers), the
parsing of single and chunked JSON answers, error mapping (kubo's error
document, plain-text errors, unreachable node, timeouts, not-JSON), retries
with backoff (connection errors only; non-idempotent calls never repeated once
sent), and the subscription stream's stop conditions. The stand-in is an
``http.server`` speaking HTTP only (see http_stub.py); what kubo itself answers
is covered by tests/integration/module_utils/test_kubo_client.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from email.parser import BytesParser
from email.policy import HTTP

import pytest
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.errors import CollectionError
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.kubo import (
    KuboClient,
    KuboError,
    KuboTimeout,
    multibase_decode,
    multibase_encode,
)
from http_stub import Recorded, Reply, Script, free_port, http_stub, json_reply

PEER = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"


def ok(_: Recorded) -> Reply:
    return json_reply('{"Strings": ["connect ' + PEER + ' success"]}')


def multipart_files(recorded: Recorded) -> dict[str, bytes]:
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + recorded.headers["content-type"].encode() + b"\r\n\r\n" + recorded.body
    )
    return {
        part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
        for part in message.iter_parts()
    }


# -- request building -----------------------------------------------------------


def test_every_call_is_a_post_to_api_v0_with_repeated_arg_parameters() -> None:
    with http_stub(ok) as stub, KuboClient(stub.url) as client:
        client.swarm_connect("/ip4/10.0.0.1/tcp/4001/p2p/" + PEER, "/ip4/10.0.0.2/tcp/4001/p2p/" + PEER)
    (request,) = stub.requests
    assert request.method == "POST"
    assert request.path == "/api/v0/swarm/connect"
    assert request.query == [
        ("arg", "/ip4/10.0.0.1/tcp/4001/p2p/" + PEER),
        ("arg", "/ip4/10.0.0.2/tcp/4001/p2p/" + PEER),
    ]


def test_boolean_options_are_sent_as_true_or_false_and_none_options_are_left_out() -> None:
    cid = "QmcnhBjk38swiaohSjBrLrFk7geRGnfFx1dxCY6B7DYAiq"
    with http_stub(lambda _: json_reply('{"Hash": "' + cid + '"}')) as stub, KuboClient(stub.url) as client:
        assert client.add(b"data", pin=False) == cid
        assert client.add(b"data", cid_version=1) == cid
    assert stub.requests[0].path == "/api/v0/add"
    assert stub.requests[0].query == [("pin", "false"), ("progress", "false")]
    assert stub.requests[1].query == [("pin", "true"), ("cid-version", "1"), ("progress", "false")]


def test_config_set_sends_the_value_as_json_with_the_json_option() -> None:
    peers = [{"ID": PEER, "Addrs": ["/ip4/10.0.0.1/tcp/4001"]}]
    with (
        http_stub(lambda _: json_reply(json.dumps({"Key": "Peering.Peers", "Value": peers}))) as stub,
        KuboClient(stub.url) as client,
    ):
        assert client.config_set("Peering.Peers", peers) == peers
    query = stub.requests[0].query
    assert query[0] == ("arg", "Peering.Peers")
    assert json.loads(query[1][1]) == peers
    assert ("json", "true") in query


def test_pubsub_pub_sends_the_topic_multibase_encoded_and_the_data_as_a_multipart_file() -> None:
    data = b"\x00binary\xffpayload\n"
    with http_stub(lambda _: Reply(body=b"")) as stub, KuboClient(stub.url) as client:
        client.pubsub_pub("cluster-discovery/v1/identities/abc?&", data)
    (request,) = stub.requests
    assert request.path == "/api/v0/pubsub/pub"
    ((name, topic),) = request.query
    assert name == "arg"
    assert topic.startswith("u") and "=" not in topic
    assert multibase_decode(topic) == b"cluster-discovery/v1/identities/abc?&"
    assert request.headers["content-type"].startswith("multipart/form-data")
    assert multipart_files(request) == {"file": data}


def test_multibase_base64url_round_trips_any_bytes() -> None:
    for data in (b"", b"a", b"ab", b"abc", bytes(range(256))):
        assert multibase_decode(multibase_encode(data)) == data


def test_multibase_decoding_refuses_other_bases() -> None:
    with pytest.raises(ValueError, match="prefix"):
        multibase_decode("mYWJj")


def test_the_authorization_header_is_sent_when_given() -> None:
    with (
        http_stub(lambda _: json_reply('{"ID": "x"}')) as stub,
        KuboClient(stub.url, authorization="Bearer s3cret") as client,
    ):
        client.id()
    assert stub.requests[0].headers["authorization"] == "Bearer s3cret"


def only_with(token: str) -> Script:
    """A node whose API.Authorizations accept ``Bearer <token>`` only, as kubo answers (403, plain text)."""

    def answer(recorded: Recorded) -> Reply:
        if recorded.headers.get("authorization") != f"Bearer {token}":
            return Reply(status=403, body=b"403 - Forbidden\n", content_type="text/plain")
        return json_reply('{"Hash": "QmX", "Name": "x", "Size": "1"}')

    return answer


@pytest.mark.parametrize("call", ["id", "pubsub_pub"], ids=["idempotent", "not-idempotent"])
def test_a_refused_token_is_asked_for_again_and_the_call_sent_once_more(call: str) -> None:
    """A SwarmPool made anew has a new token: whoever keeps the old one must follow without a restart."""
    asked: list[str] = []

    def reauthorize() -> str:
        asked.append("new")
        return "Bearer new"

    with (
        http_stub(only_with("new")) as stub,
        KuboClient(stub.url, authorization="Bearer old", reauthorize=reauthorize, retries=0) as client,
    ):
        if call == "id":
            client.id()
        else:
            client.pubsub_pub("topic", b"news")  # refused before the node acted on it: safe to send again
        client.id()  # the new token is kept
    assert asked == ["new"]
    assert [r.headers.get("authorization") for r in stub.requests] == ["Bearer old", "Bearer new", "Bearer new"]
    if call == "pubsub_pub":
        assert multipart_files(stub.requests[1]) == multipart_files(stub.requests[0])


def test_a_token_refused_again_is_reported_after_one_more_try_and_an_unchanged_one_is_not_sent_again() -> None:
    with http_stub(only_with("right")) as stub:
        with (
            KuboClient(stub.url, authorization="Bearer old", reauthorize=lambda: "Bearer wrong", retries=0) as client,
            pytest.raises(KuboError) as refused,
        ):
            client.id()
        assert refused.value.status == 403
        assert len(stub.requests) == 2
        with (
            KuboClient(stub.url, authorization="Bearer old", reauthorize=lambda: "Bearer old", retries=0) as client,
            pytest.raises(KuboError),
        ):
            client.id()
        assert len(stub.requests) == 3, "the same token again would be refused again"


def test_other_errors_do_not_ask_for_a_token() -> None:
    asked: list[str] = []
    with (
        http_stub(lambda _: Reply(status=500, body=b'{"Message": "x", "Code": 0, "Type": "error"}')) as stub,
        KuboClient(stub.url, authorization="Bearer t", reauthorize=lambda: asked.append("x") or "Bearer u") as client,
        pytest.raises(KuboError),
    ):
        client.id()
    assert (asked, len(stub.requests)) == ([], 1)


def test_credentials_in_the_api_url_never_appear_in_error_messages() -> None:
    port = free_port()
    with KuboClient(f"http://user:hunter2@127.0.0.1:{port}", retries=0) as client, pytest.raises(KuboError) as caught:
        client.id()
    assert "hunter2" not in str(caught.value)
    assert caught.value.node == f"http://127.0.0.1:{port}"


def test_a_url_that_is_not_http_is_refused_before_any_call() -> None:
    with pytest.raises(KuboError, match="http://host:port"):
        KuboClient("127.0.0.1:5001")


# -- answers ------------------------------------------------------------------------


def test_a_chunked_answer_of_several_json_values_is_parsed_value_by_value() -> None:
    body = (
        json.dumps({"ID": PEER, "Status": "success"}) + "\n" + json.dumps({"ID": "Qm" + "a" * 44, "Status": "success"})
    )
    with (
        http_stub(lambda _: Reply(body=body.encode(), headers={"X-Chunked-Output": "1"})) as stub,
        KuboClient(stub.url) as client,
    ):
        results = client.peering_rm(PEER, "Qm" + "a" * 44)
    assert [result["ID"] for result in results] == [PEER, "Qm" + "a" * 44]


def test_null_lists_in_answers_become_empty_lists() -> None:
    with http_stub(lambda _: json_reply('{"Peers": null}')) as stub, KuboClient(stub.url) as client:
        assert client.swarm_peers() == []
        assert client.peering_ls() == []
        assert client.bootstrap_list() == []


def test_add_returns_the_cid_of_the_last_event_and_sends_pin() -> None:
    events = '{"Name": "data", "Hash": "QmFirst", "Size": "19"}\n{"Name": "data", "Hash": "QmLast", "Size": "19"}\n'
    with http_stub(lambda _: Reply(body=events.encode())) as stub, KuboClient(stub.url) as client:
        assert client.add(b"hello", pin=False) == "QmLast"
    assert ("pin", "false") in stub.requests[0].query
    assert multipart_files(stub.requests[0]) == {"file": b"hello"}


def test_cat_asks_for_one_byte_past_the_limit_and_refuses_larger_content() -> None:
    with http_stub(lambda _: Reply(body=b"x" * 11, content_type="text/plain")) as stub, KuboClient(stub.url) as client:
        with pytest.raises(KuboError, match="larger than the limit of 10 bytes"):
            client.cat("QmSomething", max_bytes=10)
        assert client.cat("QmSomething", max_bytes=11) == b"x" * 11
    assert ("length", "11") in stub.requests[0].query


# -- errors ---------------------------------------------------------------------------


def test_a_kubo_error_document_becomes_a_kubo_error_naming_endpoint_node_and_message() -> None:
    document = {"Message": "connect " + PEER + " failure: failed to dial", "Code": 0, "Type": "error"}
    with (
        http_stub(lambda _: Reply(status=500, body=json.dumps(document).encode())) as stub,
        KuboClient(stub.url) as client,
        pytest.raises(KuboError) as caught,
    ):
        client.swarm_connect("/ip4/10.0.0.1/tcp/4001/p2p/" + PEER)
    error = caught.value
    assert isinstance(error, CollectionError)
    assert error.endpoint == "/api/v0/swarm/connect"
    assert error.node == stub.url
    assert error.status == 500
    assert error.kubo_message == document["Message"]
    assert error.kubo_code == 0
    assert "/api/v0/swarm/connect" in error.msg and stub.url in error.msg and "failed to dial" in error.msg
    assert error.fail_kwargs()["status"] == 500


def test_error_messages_leave_out_query_arguments() -> None:
    with (
        http_stub(lambda _: Reply(status=500, body=b'{"Message": "nope", "Code": 0, "Type": "error"}')) as stub,
        KuboClient(stub.url) as client,
        pytest.raises(KuboError) as caught,
    ):
        client.pubsub_pub("secret-topic-name", b"x")
    assert multibase_encode(b"secret-topic-name") not in str(caught.value)


@pytest.mark.parametrize(
    ("reply", "status", "needle"),
    [
        pytest.param(
            Reply(status=404, body=b"404 page not found\n", content_type="text/plain"),
            404,
            "does not know the command",
            id="unknown-command-404",
        ),
        pytest.param(
            Reply(status=400, body=b'unknown option "bogus"\n', content_type="text/plain"),
            400,
            'unknown option "bogus"',
            id="plain-text-400",
        ),
        pytest.param(
            Reply(status=403, body=b"403 - Forbidden\n", content_type="text/plain"),
            403,
            "API.Authorizations",
            id="forbidden-403",
        ),
        pytest.param(
            Reply(status=502, body=b"<html>" + b"x" * 5000 + b"</html>", content_type="text/html"),
            502,
            "HTTP 502",
            id="proxy-page-truncated",
        ),
    ],
)
def test_http_errors_without_a_kubo_document_keep_status_and_text(reply: Reply, status: int, needle: str) -> None:
    with http_stub(lambda _: reply) as stub, KuboClient(stub.url) as client, pytest.raises(KuboError) as caught:
        client.id()
    assert caught.value.status == status
    assert caught.value.kubo_message is None
    assert needle in caught.value.msg
    assert len(caught.value.msg) < 1300


def test_an_answer_that_is_not_json_is_an_error_not_a_crash() -> None:
    with (
        http_stub(lambda _: Reply(body=b"<html>hello</html>")) as stub,
        KuboClient(stub.url) as client,
        pytest.raises(KuboError, match="not JSON"),
    ):
        client.id()


def test_http_errors_are_not_retried() -> None:
    with (
        http_stub(lambda _: Reply(status=500, body=b'{"Message": "x", "Code": 0, "Type": "error"}')) as stub,
        KuboClient(stub.url, retries=3, backoff=0.01) as client,
        pytest.raises(KuboError),
    ):
        client.id()
    assert len(stub.requests) == 1


def test_a_slow_answer_is_a_timeout_error_naming_the_endpoint() -> None:
    with (
        http_stub(lambda _: Reply(body=b"{}", delay=1.0)) as stub,
        KuboClient(stub.url, timeout=0.2, retries=0) as client,
        pytest.raises(KuboTimeout) as caught,
    ):
        client.id()
    assert "did not answer /api/v0/id within 0.2 s" in caught.value.msg


def test_content_that_stops_coming_is_a_timeout_error_too() -> None:
    """Discovery redials a member whose document stalls (issue 20): a stall mid-stream must read as one."""
    with (
        http_stub(lambda _: Reply(content_type="text/plain", lines=[b"the first part"], hold=1.0)) as stub,
        KuboClient(stub.url, timeout=0.2, retries=0) as client,
        pytest.raises(KuboTimeout) as caught,
    ):
        client.cat("bafkreifzs7gybxjtfgv4n5sovw2s4zgwicnuke66ewzlxo6utj22gqosie")
    assert "broke off /api/v0/cat" in caught.value.msg


def test_a_refusal_is_not_a_timeout() -> None:
    reply = Reply(status=500, body=b'{"Message": "no link named", "Code": 0, "Type": "error"}')
    with (
        http_stub(lambda _: reply) as stub,
        KuboClient(stub.url, retries=0) as client,
        pytest.raises(KuboError) as caught,
    ):
        client.cat("bafkreifzs7gybxjtfgv4n5sovw2s4zgwicnuke66ewzlxo6utj22gqosie")
    assert not isinstance(caught.value, KuboTimeout)


def test_a_read_timeout_is_not_repeated_even_for_an_idempotent_call() -> None:
    with http_stub(lambda _: Reply(body=b"{}", delay=1.0)) as stub:
        with KuboClient(stub.url, timeout=0.2, retries=3, backoff=0.01) as client, pytest.raises(KuboError):
            client.id()
        time.sleep(0.1)
    assert len(stub.requests) == 1


# -- retries ----------------------------------------------------------------------------


def test_an_unreachable_node_is_retried_with_exponential_backoff_then_reported() -> None:
    port = free_port()
    began = time.monotonic()
    with KuboClient(f"http://127.0.0.1:{port}", retries=3, backoff=0.2) as client, pytest.raises(KuboError) as caught:
        client.id()
    elapsed = time.monotonic() - began
    # urllib3 retries at once, then waits 0.2 * 2**1 and 0.2 * 2**2 seconds.
    assert 1.2 <= elapsed < 5
    assert caught.value.endpoint == "/api/v0/id"
    assert caught.value.status is None
    assert f"Could not reach kubo at http://127.0.0.1:{port} for /api/v0/id" in caught.value.msg
    assert "refused" in caught.value.msg.lower()


def test_no_retries_means_one_attempt() -> None:
    port = free_port()
    began = time.monotonic()
    with KuboClient(f"http://127.0.0.1:{port}", retries=0, backoff=5) as client, pytest.raises(KuboError):
        client.id()
    assert time.monotonic() - began < 1


def test_a_node_that_comes_up_during_the_backoff_is_reached() -> None:
    port = free_port()
    with http_stub(ok, port=port, start_after=0.5) as stub:
        with KuboClient(stub.url, retries=4, backoff=0.5) as client:
            assert client.swarm_connect("/ip4/10.0.0.1/tcp/4001/p2p/" + PEER)
        assert len(stub.requests) == 1


def test_a_non_idempotent_call_is_still_retried_when_the_connection_never_opened() -> None:
    port = free_port()
    with http_stub(lambda _: Reply(body=b""), port=port, start_after=0.5) as stub:
        with KuboClient(stub.url, retries=4, backoff=0.5) as client:
            client.pubsub_pub("topic", b"once")
        assert len(stub.requests) == 1


def dropping_first(count: int, reply: Reply) -> Script:
    seen = {"n": 0}

    def script(_: Recorded) -> Reply:
        seen["n"] += 1
        return Reply(drop=True) if seen["n"] <= count else reply

    return script


def test_an_idempotent_call_is_repeated_after_the_node_dropped_the_connection() -> None:
    with (
        http_stub(dropping_first(1, json_reply('{"ID": "' + PEER + '"}'))) as stub,
        KuboClient(stub.url, retries=2, backoff=0.01) as client,
    ):
        assert client.id()["ID"] == PEER
    assert len(stub.requests) == 2


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda client: client.pubsub_pub("topic", b"message"), id="pubsub-pub"),
    ],
)
def test_a_non_idempotent_call_is_never_repeated_once_the_node_may_have_received_it(
    call: Callable[[KuboClient], object],
) -> None:
    with (
        http_stub(dropping_first(5, Reply(body=b"{}"))) as stub,
        KuboClient(stub.url, retries=3, backoff=0.01) as client,
        pytest.raises(KuboError) as caught,
    ):
        call(client)
    assert len(stub.requests) == 1
    assert "Could not reach kubo" in caught.value.msg


def test_retries_give_up_after_the_bound() -> None:
    with (
        http_stub(dropping_first(10, Reply(body=b"{}"))) as stub,
        KuboClient(stub.url, retries=2, backoff=0.01) as client,
        pytest.raises(KuboError),
    ):
        client.id()
    assert len(stub.requests) == 3


# -- subscriptions ------------------------------------------------------------------------


def message(data: bytes, seqno: int = 1) -> bytes:
    return json.dumps(
        {
            "from": PEER,
            "data": multibase_encode(data),
            "seqno": multibase_encode(seqno.to_bytes(8, "big")),
            "topicIDs": [multibase_encode(b"topic")],
        }
    ).encode()


def test_subscribe_asks_kubo_to_end_the_stream_at_the_deadline_and_decodes_messages() -> None:
    reply = Reply(lines=[message(b"one", 1), message(b"two", 2)], headers={"X-Chunked-Output": "1"})
    with (
        http_stub(lambda _: reply) as stub,
        KuboClient(stub.url) as client,
        client.subscribe("topic", duration=2.5) as subscription,
    ):
        received = list(subscription)
    assert [(m.sender, m.data, int.from_bytes(m.seqno, "big"), m.topics) for m in received] == [
        (PEER, b"one", 1, ("topic",)),
        (PEER, b"two", 2, ("topic",)),
    ]
    query = stub.requests[0].query
    assert ("arg", multibase_encode(b"topic")) in query
    assert ("timeout", "2500ms") in query


def test_a_subscription_stops_after_max_messages_and_closes_the_stream() -> None:
    reply = Reply(lines=[message(b"1"), message(b"2"), message(b"3")], hold=10)
    with http_stub(lambda _: reply) as stub, KuboClient(stub.url) as client:
        began = time.monotonic()
        subscription = client.subscribe("topic", duration=30, max_messages=2)
        assert [m.data for m in subscription] == [b"1", b"2"]
        assert subscription.closed
        assert time.monotonic() - began < 5


def test_a_subscription_stops_at_the_first_message_the_predicate_accepts() -> None:
    reply = Reply(lines=[message(b"skip"), message(b"stop"), message(b"after")], hold=10)
    with http_stub(lambda _: reply) as stub, KuboClient(stub.url) as client:
        began = time.monotonic()
        with client.subscribe("topic", duration=30, until=lambda m: m.data == b"stop") as subscription:
            assert [m.data for m in subscription] == [b"skip", b"stop"]
        assert time.monotonic() - began < 5


def test_a_subscription_ends_quietly_at_its_deadline_even_if_the_server_ignores_it() -> None:
    reply = Reply(lines=[], hold=30)
    with http_stub(lambda _: reply) as stub, KuboClient(stub.url, timeout=0.5) as client:
        began = time.monotonic()
        assert list(client.subscribe("topic", duration=0.5)) == []
        assert time.monotonic() - began < 5


def test_a_message_that_cannot_be_decoded_is_a_kubo_error() -> None:
    reply = Reply(lines=[b'{"from": "x", "data": "mNotBase64url"}'])
    with (
        http_stub(lambda _: reply) as stub,
        KuboClient(stub.url) as client,
        pytest.raises(KuboError, match="could not be decoded"),
    ):
        list(client.subscribe("topic", duration=5))
