"""Run `articlebot serve` as a separate process against a BotApiEmulator (tests and the load test)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from tests.botapi.server import BotApiEmulator

ROOT = Path(__file__).resolve().parents[2]


def write_config(path: Path, **sections: dict[str, Any]) -> Path:
    """A config.yaml for a test bot: loopback fetches allowed, fast polling; `sections` override keys."""
    config: dict[str, Any] = {
        "corpus": {"allow_private_addresses": True},
        "telegram": {"poll_timeout_s": 5},
    }
    for name, values in sections.items():
        config.setdefault(name, {}).update(values)
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def serve_command(config: Path, data_dir: Path, *extra: str) -> list[str]:
    """`articlebot serve` if the console script is installed beside this Python, else `python -m bot.cli`."""
    script = Path(sys.executable).parent / "articlebot"
    head = [str(script)] if script.exists() else [sys.executable, "-m", "bot.cli"]
    return [*head, "--config", str(config), "--data-dir", str(data_dir), "serve", *extra]


class BotProcess:
    """The bot under test: started against the emulator, stopped with SIGTERM, its log kept in a file."""

    def __init__(
        self,
        api: BotApiEmulator,
        config: Path,
        data_dir: Path,
        log_path: Path,
        *,
        admins: str = "",
        extra_args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ):
        self.api = api
        self.log_path = log_path
        environ = {
            **os.environ,
            **api.env(),
            "ARTICLEBOT_ADMINS": admins,
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        environ.pop("ARTICLEBOT_CONFIG", None)
        environ.pop("ARTICLEBOT_DATA_DIR", None)
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            serve_command(config, data_dir, *extra_args),
            cwd=ROOT,
            env=environ,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 180.0, *, webhook: bool = False) -> None:
        """Ready when it polls (or has set its webhook): the model is loaded and post_init has run."""

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the bot exited with {self.proc.returncode}:\n{self.log_tail()}")
            return bool(self.api.webhook.get("url")) if webhook else self.api.polling_since is not None

        try:
            self.api.wait_until(ready, timeout, "the bot to start")
        except TimeoutError:
            raise TimeoutError(f"the bot did not start in {timeout:.0f}s:\n{self.log_tail()}") from None

    def log_text(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM, then wait (bounded); SIGKILL only if it hangs. Returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        return self.proc.returncode

    def alive(self) -> bool:
        return self.proc.poll() is None


def wait_quiet(api: BotApiEmulator, chat_id: int, seconds: float) -> int:
    """Wait `seconds` and return how many messages the chat has then (for 'nothing more came')."""
    time.sleep(seconds)
    return api.mark(chat_id)


def synthetic_article(words: int, seed: int, title: str = "Harbour logistics report") -> bytes:
    """A long, varied plain-text article (one passage per `index.chunk_words`, 320 words) for slow-path tests."""
    rng = random.Random(seed)
    vocab = (  # noqa: SIM905 - a sentence of words reads better than a 41-line list
        "the harbour crane ship cargo port crew tide dock berth pilot tug freight load night shift manager report "
        "delay weather storm container quay rail truck customs fuel engine repair schedule captain office winter "
        "summer north south river bridge lock canal barge"
    ).split()
    sentences = []
    for _ in range(words // 12):
        body = " ".join(rng.choice(vocab) for _ in range(12))
        sentences.append(body[0].upper() + body[1:] + ".")
    return (title + "\n\n" + " ".join(sentences)).encode()
