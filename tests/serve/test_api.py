"""The explorer's JSON API through Starlette's test client: typed prompt -> graph, annotations,
and the request guard (hosts, origins, sizes, ids that could reach the file system)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from feature_lens import Lens
from feature_lens.graph import AttributionGraph
from feature_lens.serve.security import CSP
from tests.dashboard.conftest import SCRIPT, XSS_PROMPT
from tests.serve.conftest import ORIGIN, compute, make_app, post


def test_prompt_to_graph_saved_and_listed(client: Any, tmp_path: Path) -> None:
    graph_id = compute(client)
    listed = client.get("/api/graphs").json()
    assert [m["id"] for m in listed] == [graph_id]
    assert listed[0]["prompt"] == XSS_PROMPT
    # The saved file is a feature-lens graph whose nodes are the view's nodes.
    saved = AttributionGraph.load(tmp_path / "graphs" / graph_id / "graph.json")
    res = client.get(f"/api/graphs/{graph_id}").json()
    assert {n["id"] for n in res["view"]["nodes"]} == set(saved.nodes)
    assert len(res["view"]["edges"]["w"]) == len(saved.edges)
    assert SCRIPT in res["view"]["tokens"]  # hostile tokens travel as data, shown as text
    # Metric: log-prob of the model's top prediction, and the outputs' probabilities sum below 1.
    outputs = res["meta"]["outputs"]
    assert 0 < sum(o["prob"] for o in outputs) <= 1 + 1e-6
    assert res["meta"]["metric"].startswith("log p(")
    assert repr(outputs[0]["token"]) in res["meta"]["metric"]


def test_answers_and_corrupted_prompt(client: Any) -> None:
    graph_id = compute(client, prompt="w1 w2 w3 w4", corrupted="w5 w6 w7 w8", answers=["w9", "w10"])
    res = client.get(f"/api/graphs/{graph_id}").json()
    assert res["view"]["settings"]["baseline"] == "corrupted"
    assert res["meta"]["metric"] == "logit 'w9' - logit 'w10'"


def test_bad_prompts_fail_with_a_message(client: Any) -> None:
    for body, text in [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "w1 " * 1001}, "prompt"),
        ({"prompt": "w1", "method": "magic"}, "method"),
        ({"prompt": "w1 w2", "answers": ["w1 w2"]}, "single token"),
        ({"prompt": "w1 w2", "corrupted": "w1"}, "same token length"),
        ({"prompt": " ".join(["w1"] * 20)}, "tokens"),
    ]:
        response = post(client, "/api/graphs", body)
        if response.status_code == 202:
            job = response.json()
            while job["status"] == "running":
                job = client.get(f"/api/jobs/{job['id']}").json()
            assert job["status"] == "error", (body, job)
            assert text in job["error"], (body, job)
        else:
            assert response.status_code == 400, body
            assert text in response.json()["error"], body


def test_annotations_round_trip_and_are_checked(client: Any, tmp_path: Path) -> None:
    graph_id = compute(client)
    view = client.get(f"/api/graphs/{graph_id}").json()["view"]
    features = [n for n in view["nodes"] if n["kind"] == "feature"]
    a, b = features[0], features[1]
    body = {
        "pinned": [a["id"], b["id"]],
        "supernodes": [{"name": SCRIPT, "members": [a["id"], b["id"]]}],
        "labels": {a["feature"]: "<b>label</b>"},
    }
    assert post(client, f"/api/graphs/{graph_id}/annotations", body).status_code == 200
    assert (tmp_path / "graphs" / graph_id / "annotations.json").is_file()
    res = client.get(f"/api/graphs/{graph_id}").json()
    assert res["annotations"] == body
    labelled = [n for n in res["view"]["nodes"] if n["feature"] == a["feature"]]
    assert labelled
    assert all(n["label"] == "<b>label</b>" for n in labelled)
    unlabelled = next(n for n in res["view"]["nodes"] if n["feature"] == b["feature"])
    assert unlabelled["label"].startswith(f"#{b['index']} ")  # the top-token label
    for bad in [
        {"pinned": ["feature:nowhere:0:1"]},
        {"labels": {"nowhere:1": "x"}},
        {"supernodes": [{"name": "", "members": [a["id"]]}]},
        {"labels": {a["feature"]: "x" * 201}},
        {"extra": 1},
    ]:
        assert post(client, f"/api/graphs/{graph_id}/annotations", bad).status_code == 400, bad
    assert client.get(f"/api/graphs/{graph_id}").json()["annotations"] == body


def test_ids_never_reach_the_file_system(client: Any) -> None:
    for bad in ["..", "..%2F..%2Fetc", "ABCDEF012345", "0123456789ab/../x", "%2e%2e"]:
        response = client.get(f"/api/graphs/{bad}")
        assert response.status_code in (400, 404), bad
    assert client.get("/api/graphs/0123456789ab").status_code == 404
    assert client.get("/static/..%2Fapp.py").status_code == 404
    assert client.get("/static/index.html").status_code == 404
    assert client.get("/api/jobs/nope").status_code == 404


def test_guard_refuses_cross_site_and_foreign_hosts(client: Any) -> None:
    body = {"prompt": "w1 w2"}
    assert client.post("/api/graphs", json=body).status_code == 403  # no Origin
    assert (
        client.post("/api/graphs", json=body, headers={"Origin": "http://evil.example"}).status_code
        == 403
    )
    cross = {"Origin": ORIGIN, "Sec-Fetch-Site": "cross-site"}
    assert client.post("/api/graphs", json=body, headers=cross).status_code == 403
    plain = client.post(
        "/api/graphs",
        content=b'{"prompt": "w1"}',
        headers={"Origin": ORIGIN, "Content-Type": "text/plain"},
    )
    assert plain.status_code == 415
    assert client.get("/", headers={"Host": "evil.example"}).status_code == 421
    big = client.post(
        "/api/graphs",
        content=b"[" + b"1," * 200_000 + b"1]",
        headers={"Origin": ORIGIN, "Content-Type": "application/json"},
    )
    assert big.status_code == 413


def test_pages_carry_a_strict_csp_and_no_inline_code(client: Any) -> None:
    page = client.get("/")
    assert page.headers["content-security-policy"] == CSP
    assert "unsafe-inline" not in CSP
    assert "unsafe-eval" not in CSP
    assert "script-src 'self';" in CSP
    html = page.text
    assert '<script src="/static/explorer.js"></script>' in html
    assert html.count("<script") == 1
    assert not re.search(r"<[^>]*\son[a-z]+\s*=", html)  # no inline event handlers
    assert "http" not in html  # nothing from another server
    js = client.get("/static/explorer.js")
    assert js.headers["content-type"].startswith("text/javascript")
    assert "innerHTML" not in js.text
    assert "eval(" not in js.text
    assert "http" not in js.text
    assert client.get("/static/explorer.css").headers["x-content-type-options"] == "nosniff"


def test_other_hosts_are_configurable(serve_lens: Lens, tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    app = make_app(serve_lens, tmp_path / "g", hosts=["127.0.0.1:9"])
    with TestClient(app, base_url="http://127.0.0.1:9") as test_client:
        assert test_client.get("/api/info").json()["model"] == "tiny"
    with TestClient(app) as test_client:
        assert test_client.get("/api/info").status_code == 421
