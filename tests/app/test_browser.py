"""Real-browser test: start `interp app`, drive headless Chromium through its pages (home, an
analysis page that leads with its verdicts and headline figure, the explorer, the SAE features
page and a checkpoint's check report).

Uses Debian's chromium (/usr/bin/chromium) through Playwright's Python driver. Skipped
where either is missing, except under CI (``CI=true``), where .ci/run installs both and
a missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.slow


def _need_browser():
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("playwright is not installed (it is in the dev extras)")
        pytest.skip("playwright not installed")
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs Debian's chromium")
        pytest.skip("no chromium on this machine (apt-get install chromium)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served_app(tmp_path, real_model):
    """`interp app` on a free loopback port, with one model_report run, a saved tiny model, and
    SAE runs on the tiny model and on the real model (the newest, so the Features page opens on
    it)."""
    from interp.data.tokenizer import word_tokenizer
    from interp.models.transformer import build_transformer
    from interp.tracing.model import Model
    from tests.app.test_app import make_run
    from tests.conftest import build_spec

    runs = tmp_path / "runs"
    make_run(runs, "20260101-120000-abcdef", analysis="model_report", experiment="model_report")
    tok = word_tokenizer("def add a b return x = 1 2 :".split())
    spec = build_spec(d_vocab=len(tok))
    model_dir = tmp_path / "tiny-model"
    Model(
        build_transformer(spec, tokenizer=tok),
        backend="tl",
        tokenizer=tok,
        kind="transformer",
        spec={"builder": "transformer", "spec": spec.model_dump(mode="json")},
    ).save(model_dir)
    _sae_run(runs, model_dir, tmp_path)
    _real_sae_run(runs, real_model, tmp_path)
    _check_run(runs, tmp_path)
    port = _free_port()
    # the session's cache: the real model is converted there already (the app loads it from it)
    env = {**os.environ, "INTERP_RUNS": str(runs)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "interp.cli", "app", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("the dashboard did not answer its health endpoint within 60 s")
        yield url, model_dir
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _sae_run(runs, model_dir, tmp_path) -> None:
    """A tiny run of the sae experiment on the saved model: the Features page has real contexts to
    show."""
    import interp
    from interp.utils import write_json

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(4):
        (corpus / f"m{i}.py").write_text("def add a b : return a b x = 1 2 \n" * 60)
    result = interp.analyses.get("sae").run(
        dict(
            model=str(model_dir),
            corpus=str(corpus),
            n_train=16,
            n_eval=4,
            seq_len=12,
            d_sae=16,
            k=4,
            steps=40,
            batch_size=64,
            feature_k=3,
        )
    )
    run = runs / "sae" / "20260101-130000-fedcba"
    result.save(run)
    write_json(
        run / "run.json",
        {"experiment": "sae", "preset": "quick", "analysis": "sae", "created": "20260101-130000"},
    )


def _real_sae_run(runs, real_model, tmp_path) -> None:
    """A small run of the sae experiment's real preset on SmolLM2, over real Python source."""
    import sysconfig

    import interp
    from interp.utils import write_json

    corpus = tmp_path / "real-corpus"
    corpus.mkdir()
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for name in ("json/decoder.py", "json/encoder.py", "textwrap.py", "bisect.py"):
        (corpus / name.replace("/", "_")).write_text((stdlib / name).read_text())
    load = interp.load_model
    interp.load_model = lambda name, *a, **k: (
        real_model if name == "pretrained:smollm2-135m" else load(name, *a, **k)
    )
    try:
        result = interp.analyses.get("sae").run(
            dict(
                model="pretrained:smollm2-135m",
                layer=14,
                corpus=str(corpus),
                n_train=24,
                n_eval=2,
                seq_len=32,
                d_sae=128,
                k=8,
                steps=60,
                batch_size=128,
                collect_batch=8,
                feature_k=3,
            )
        )
    finally:
        interp.load_model = load
    run = runs / "sae" / "20260101-133000-d00d00"
    result.save(run)
    write_json(
        run / "run.json",
        {"experiment": "sae", "preset": "real", "analysis": "sae", "created": "20260101-133000"},
    )


def _check_run(runs, tmp_path) -> None:
    """`interp check` on a saved GPT-2-shaped checkpoint: the check page has a real parity
    report."""
    from interp.utils import write_json
    from tests.analyses.test_check import run_check, save_checkpoint

    result = run_check(save_checkpoint("gpt2", tmp_path / "gpt2"))
    run = runs / "check" / "20260101-140000-abcabc"
    result.save(run)
    write_json(
        run / "run.json",
        {"experiment": "check", "preset": "cli", "analysis": "check", "created": "20260101-140000"},
    )


def choose_model(page, option: str) -> None:
    """Pick ``option`` in the explorer's Model box: by its label (the page has other boxes), typed
    to filter (the list of built models may be long)."""
    box = (
        page.locator('[data-testid="stSelectbox"]')
        .filter(has=page.get_by_text("Model", exact=True))
        .first
    )
    box.click()
    page.keyboard.type(option[:12])
    page.get_by_role("option", name=option).click()


def test_dashboard_in_a_real_browser(served_app, tmp_path):
    _need_browser()
    from playwright.sync_api import sync_playwright

    url, model_dir = served_app
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(
            240_000
        )  # an upper bound: a cold real model loads and generates on a busy CPU
        try:
            # home page: the runs table shows our run
            page.goto(url)
            page.get_by_text("interp dashboard").first.wait_for()
            page.get_by_text("Runs where every criterion holds").first.wait_for()
            # analysis page: the verdict strip and the headline figure come first, the criteria
            # table is folded away below them
            page.goto(f"{url}/model_report")
            page.get_by_text("Paper claims: 1 of 2 hold").first.wait_for()
            body = page.inner_text("body")
            assert "Model report" in body
            assert "does not hold" in body  # the fake run's failing claim is said plainly
            headline = page.locator(".stPlotlyChart").first
            headline.locator(".main-svg").first.wait_for()  # drawn, so laid out at its place
            criteria = page.get_by_text("Criteria: 2/3 hold").first
            criteria.wait_for()
            for _ in range(
                480
            ):  # a cold page (or a busy machine) may still be laying out: up to 120 s to settle
                if headline.bounding_box()["y"] < criteria.bounding_box()["y"]:
                    break
                page.wait_for_timeout(250)
            assert headline.bounding_box()["y"] < criteria.bounding_box()["y"]
            assert not page.get_by_text(
                "transformer accuracy minus LSTM accuracy"
            ).first.is_visible()
            criteria.click()  # unfold: the table and the descriptions appear
            page.get_by_text("loss drop with depth").first.wait_for()
            # explorer: load the saved tiny model from its directory and run its default prompt
            page.goto(f"{url}/explore")
            page.get_by_text("Explore a model").first.wait_for()
            choose_model(page, "a local directory…")
            box = page.get_by_label("Directory saved by interp or save_pretrained")
            box.fill(str(model_dir))
            box.press("Enter")
            page.get_by_text("Next-token predictions").first.wait_for()
            page.get_by_text("Attention patterns").first.wait_for()
            body = page.inner_text("body")
            assert "Traceback" not in body
            assert (
                "unknown to this model's tokenizer" not in body
            )  # the default prompt fits the model
            # the real model in the explorer: it opens on a prompt it completes sensibly
            page.goto(f"{url}/explore")
            page.get_by_text("Explore a model").first.wait_for()
            choose_model(page, "pretrained:smollm2-135m")
            page.get_by_text("Next-token predictions").first.wait_for()
            page.locator(".stPlotlyChart").filter(
                has_text="' Paris'"
            ).first.wait_for()  # "The capital of France is"
            page.get_by_text("Logit lens").first.wait_for()
            assert "Traceback" not in page.inner_text("body")
            # steering on the real model: the default contrastive pair, steered beside unsteered
            page.get_by_role("button", name="Generate steered and unsteered").click()
            page.get_by_text("Unsteered").first.wait_for()
            page.get_by_text("Steered (x4)").first.wait_for()
            body = page.inner_text("body")
            assert "Traceback" not in body and "Could not steer" not in body
            # features: the real SAE run's latents (the newest run), with contexts of real Python
            # source
            page.goto(f"{url}/features")
            page.get_by_text("Top contexts").first.wait_for()
            body = page.inner_text("body")
            assert "Traceback" not in body and "Latent 0" in body and "activation" in body
            # the real run (the newest) is the one shown: its contexts are the stdlib source it
            # read,
            # words the tiny model's corpus ("def add a b : return a b x = 1 2") does not have
            stdlib_words = (
                "yield",
                "self",
                "prefix",
                "lines",
                "obj",
                "encode",
                "decode",
                "width",
                "import",
            )
            assert any(word in body for word in stdlib_words), body[:2000]
            # check: the parity report of a saved GPT-2 checkpoint, with its figures drawn
            page.goto(f"{url}/check")
            page.get_by_text("Parity with the model's own forward").first.wait_for()
            page.get_by_text("collect vs a bare forward").first.wait_for()
            page.locator(".stPlotlyChart .main-svg").first.wait_for()
            assert "Traceback" not in page.inner_text("body")
        finally:
            page.screenshot(path=str(tmp_path / "explorer.png"), full_page=True)
            browser.close()
