"""The demo's JSON API through FastAPI's TestClient, good input and every kind of bad."""

from __future__ import annotations

import base64
import warnings

import cv2
import numpy as np
import pytest
import torch
from demo_fixtures import make_png, make_service

import degradations
from robustret.demo.app import create_app
from robustret.demo.service import MAX_UPLOAD_BYTES, ROWS, DemoService
from robustret.evaluation.pipeline import degradation_seed

with warnings.catch_warnings():  # newer Starlette prefers httpx2 to httpx; both work
    warnings.filterwarnings("ignore", message=".*httpx2")
    from fastapi.testclient import TestClient

SETTINGS = {"degradation": "gaussian_noise", "severity": "3", "restorer": "median",
            "metric": "l2", "k": "5"}


@pytest.fixture(scope="module")
def service() -> DemoService:
    return make_service()


@pytest.fixture(scope="module")
def png_bytes() -> bytes:
    return make_png()


@pytest.fixture(scope="module")
def client(service: DemoService) -> TestClient:
    return TestClient(create_app(service))


def _check_answer(answer: dict, k: int) -> None:
    assert set(answer["results"]) == set(ROWS) == set(answer["images"])
    for name in ROWS:
        rows = answer["results"][name]
        assert [item["rank"] for item in rows] == list(range(1, k + 1))
        for item in rows:
            assert set(item) >= {"rank", "gallery_index", "class_name", "score"}
        png = base64.b64decode(answer["images"][name])
        image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
        assert image.shape == (32, 32)


def test_page_and_static_files(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    for name in ("app.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200


def test_options(client: TestClient) -> None:
    options = client.get("/api/options").json()
    assert options["degradations"] == ["none", *degradations.available()]
    assert options["upload_degradation"] == "none"
    assert "identity" in options["restorers"] and "dae" not in options["restorers"]
    assert [choice["name"] for choice in options["restorer_choices"]] == options["restorers"]
    labels = {choice["name"]: choice["label"] for choice in options["restorer_choices"]}
    assert labels["wiener"] == "wiener (oracle)" and labels["median"] == "median (blind)"
    assert options["k"]["max"] == 12 and options["queries"] == 6


def test_none_searches_the_query_as_it_is(service: DemoService) -> None:
    result = service.search(service.parse({**SETTINGS, "degradation": "none",
                                           "query_index": "3"}))
    original, degraded, _ = (row.image for row in result.rows)
    assert torch.equal(original, degraded) and result.rows[1].psnr is None
    assert result.to_json()["restorer"]["label"] == "median (blind)"


def test_search_by_query_index(client: TestClient) -> None:
    response = client.post("/api/search", data={**SETTINGS, "query_index": "4"})
    assert response.status_code == 200, response.text
    answer = response.json()
    _check_answer(answer, 5)
    assert answer["query"] == {"index": 4, "class_name": "bar"}
    for name in ROWS:
        hits = [item["hit"] for item in answer["results"][name]]
        assert answer["hit_rate"][name] == pytest.approx(sum(hits) / 5)
    assert answer["psnr"]["original"] is None and answer["psnr"]["degraded"] > 0


def test_search_is_repeatable_and_matches_the_run(service: DemoService) -> None:
    request = service.parse({**SETTINGS, "query_index": "2"})
    first, second = service.search(request), service.search(request)
    assert first.to_json() == second.to_json()
    expected = degradations.apply_indexed(
        service.query_images, "gaussian_noise", 3,
        seed=degradation_seed(0, 3),
        indices=np.arange(6))
    assert np.allclose(first.rows[1].image.numpy(), expected[2].numpy(), atol=1e-6)


def test_upload_with_class_and_crop(client: TestClient, png_bytes: bytes) -> None:
    data = {**SETTINGS, "metric": "cosine", "k": "12", "class_name": "ring",
            "x": "4", "y": "2", "w": "30", "h": "20"}
    response = client.post("/api/search", data=data,
                           files={"image": ("q.png", png_bytes, "image/png")})
    assert response.status_code == 200, response.text
    answer = response.json()
    _check_answer(answer, 12)
    assert answer["query"] == {"index": None, "class_name": "ring"}
    assert all(item["hit"] is not None for item in answer["results"]["restored"])


def test_upload_without_class_has_no_hits(client: TestClient, png_bytes: bytes) -> None:
    response = client.post("/api/search", data=SETTINGS,
                           files={"image": ("q.png", png_bytes, "image/png")})
    answer = response.json()
    assert answer["hit_rate"] == {name: None for name in ROWS}
    assert all(item["hit"] is None for item in answer["results"]["original"])


def test_gallery_thumbnail(client: TestClient) -> None:
    response = client.get("/api/gallery/11.png")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert response.content.startswith(b"\x89PNG")


@pytest.mark.parametrize("path", ["/api/gallery/12.png", "/api/gallery/-1.png"])
def test_gallery_out_of_range(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404 and "out of range" in response.json()["detail"]


def test_gallery_not_a_number(client: TestClient) -> None:
    response = client.get("/api/gallery/abc.png")
    assert response.status_code == 422 and isinstance(response.json()["detail"], str)


BAD_FIELDS = [
    ({"query_index": "6"}, "query_index must be an integer in 0..5"),
    ({"query_index": "-1"}, "query_index must be"),
    ({"query_index": "one"}, "query_index must be"),
    ({"query_index": "0", "degradation": "frost"}, "unknown degradation 'frost'"),
    ({"query_index": "0", "restorer": "dae"}, "unknown restorer 'dae'"),
    ({"query_index": "0", "restorer": "nope"}, "unknown restorer 'nope'"),
    ({"query_index": "0", "restorer": "auto"}, "unknown restorer 'auto'"),  # the run had none
    ({"query_index": "0", "degradation": "none", "restorer": "wiener"},
     "wiener (oracle) reads each image's drawn parameters (a, b) and an image searched as it "
     "is (degradation none) has none; pick an estimated or blind restorer"),
    ({"query_index": "0", "metric": "hamming"}, "unknown metric"),
    ({"query_index": "0", "k": "0"}, "k must be an integer in 1..12"),
    ({"query_index": "0", "k": "13"}, "k must be an integer in 1..12"),
    ({"query_index": "0", "k": "2.5"}, "k must be an integer"),
    ({"query_index": "0", "severity": "6"}, "severity must be an integer in 1..5"),
    ({"query_index": "0", "class_name": "cat"}, "unknown class_name"),
    ({"query_index": "0", "x": "1", "y": "1"}, "a crop needs all of x, y, w and h"),
    ({"query_index": "0", "x": "0", "y": "0", "w": "0", "h": "4"}, "at least 1"),
    ({"query_index": "0", "x": "-3", "y": "0", "w": "4", "h": "4"}, "x must be an integer"),
    ({"query_index": "0", "x": "20", "y": "0", "w": "20", "h": "4"}, "does not fit"),
    ({}, "give exactly one query"),
]


@pytest.mark.parametrize(("fields", "message"), BAD_FIELDS)
def test_bad_fields(client: TestClient, fields: dict, message: str) -> None:
    response = client.post("/api/search", data={**SETTINGS, **fields})
    assert response.status_code == 400, response.text
    assert message in response.json()["detail"]
    assert "not offered" not in response.json()["detail"]


def test_missing_degradation(client: TestClient) -> None:
    data = {name: value for name, value in SETTINGS.items() if name != "degradation"}
    response = client.post("/api/search", data={**data, "query_index": "0"})
    assert response.status_code == 400 and "degradation is required" in response.json()["detail"]


@pytest.mark.parametrize(("content", "status", "message"), [
    (b"", 400, "empty"),
    (b"this is not an image at all", 415, "not an image"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, 415, "not an image"),
])
def test_bad_uploads(client: TestClient, content: bytes, status: int, message: str) -> None:
    response = client.post("/api/search", data=SETTINGS,
                           files={"image": ("q.png", content, "image/png")})
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]


def test_oversized_upload(client: TestClient) -> None:
    response = client.post("/api/search", data=SETTINGS,
                           files={"image": ("big.png", b"\x00" * (MAX_UPLOAD_BYTES + 1))})
    assert response.status_code == 413 and "10 MB" in response.json()["detail"]


def test_upload_and_index_together(client: TestClient, png_bytes: bytes) -> None:
    response = client.post("/api/search", data={**SETTINGS, "query_index": "0"},
                           files={"image": ("q.png", png_bytes, "image/png")})
    assert response.status_code == 400 and "exactly one" in response.json()["detail"]


def test_image_as_text_field(client: TestClient) -> None:
    response = client.post("/api/search", data={**SETTINGS, "image": "hello"})
    assert response.status_code == 400 and "file upload" in response.json()["detail"]


def test_malformed_body(client: TestClient) -> None:
    response = client.post("/api/search", content=b"--x\r\nbroken",
                           headers={"content-type": "multipart/form-data; boundary=x"})
    assert 400 <= response.status_code < 500
    assert isinstance(response.json()["detail"], str)


def test_server_keeps_serving_after_errors(client: TestClient) -> None:
    client.post("/api/search", data={**SETTINGS, "query_index": "99"})
    client.post("/api/search", data=SETTINGS, files={"image": ("q.png", b"junk")})
    response = client.post("/api/search", data={**SETTINGS, "query_index": "1"})
    assert response.status_code == 200


@pytest.mark.parametrize(("restorer", "degradation"), [
    (restorer, degradation)
    for restorer in ("identity", "bilateral", "nlm", "wiener", "bicubic", "estimated")
    for degradation in ("motion_blur", "lowres", "none")
    # an oracle has no drawn parameters to read under none: refused (test_bad_fields)
    if not (degradation == "none" and restorer in ("wiener", "bicubic"))])
def test_every_offered_restorer(service: DemoService, restorer: str, degradation: str) -> None:
    request = service.parse({**SETTINGS, "degradation": degradation, "restorer": restorer,
                             "query_index": "0"})
    result = service.search(request)
    assert len(result.rows) == 3 and result.rows[2].image.shape == (1, 32, 32)


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels, with almost no pixel data."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def _float_tiff(values: np.ndarray) -> bytes:
    import cv2

    ok, buffer = cv2.imencode(".tiff", values.astype(np.float32))
    assert ok
    return buffer.tobytes()


@pytest.mark.parametrize(("content", "status", "message"), [
    (_png_claiming(40000, 40000), 413, "too many pixels"),  # refused before any decoding
    (_png_claiming(8000, 8000), 413, "8000x8000"),
    (_float_tiff(np.full((16, 16), np.nan)), 422, "NaN or infinite"),
    (_float_tiff(np.full((16, 16), np.inf)), 422, "NaN or infinite"),
])
def test_hostile_uploads_are_refused_with_a_reason(client: TestClient, content: bytes,
                                                   status: int, message: str) -> None:
    """(each was a 500)"""
    response = client.post("/api/search", data=SETTINGS,
                           files={"image": ("q.tiff", content, "image/tiff")})
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]


def test_a_float_upload_is_scaled_by_its_range_not_clipped() -> None:
    """A float TIFF of 0..255 values was clipped into a white square."""
    from robustret.demo.service import decode_upload

    ramp = np.tile(np.linspace(0, 255, 16, dtype=np.float32), (16, 1))
    decoded = decode_upload(_float_tiff(ramp))
    assert decoded.min() == 0.0 and decoded.max() == 1.0
    assert np.allclose(decoded, ramp / 255.0, atol=1e-6)
    unit = np.tile(np.linspace(0.2, 0.6, 16, dtype=np.float32), (16, 1))
    assert np.array_equal(decode_upload(_float_tiff(unit)), unit)  # already in [0, 1]: as is
