"""Where channel keys come from: the configured files, or, with the emulator on, a key
set generated into ``KEYS_DIR`` on first run so `make run` needs no setup."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from app.payments.channels.crypto import generate_rsa_keypair

# File names inside KEYS_DIR. The "gateway" pair belongs to the emulator, playing Alipay.
ALIPAY_APP_PRIVATE = "alipay_app_private.pem"
ALIPAY_APP_PUBLIC = "alipay_app_public.pem"
ALIPAY_GATEWAY_PRIVATE = "alipay_gateway_private.pem"
ALIPAY_GATEWAY_PUBLIC = "alipay_gateway_public.pem"


@dataclass(frozen=True)
class AlipayKeys:
    app_private_pem: str
    alipay_public_pem: str


def _write_private(path: Path, pem: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(pem)


def ensure_emulator_keys(keys_dir: str) -> None:
    """Generate the merchant and emulator key pairs that are missing (emulator mode only)."""
    folder = Path(keys_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for private_name, public_name in (
        (ALIPAY_APP_PRIVATE, ALIPAY_APP_PUBLIC),
        (ALIPAY_GATEWAY_PRIVATE, ALIPAY_GATEWAY_PUBLIC),
    ):
        if (folder / private_name).exists():
            continue
        private_pem, public_pem = generate_rsa_keypair()
        _write_private(folder / private_name, private_pem)
        (folder / public_name).write_text(public_pem)


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as error:
        raise RuntimeError(f"cannot read key file {path}: {error.strerror}") from None


def alipay_keys(config: Mapping[str, Any]) -> AlipayKeys:
    """Our Alipay app private key and Alipay's public key, per DESIGN.md §5."""
    keys_dir = Path(config["KEYS_DIR"])
    private_file = config.get("ALIPAY_APP_PRIVATE_KEY_FILE") or keys_dir / ALIPAY_APP_PRIVATE
    public_file = config.get("ALIPAY_PUBLIC_KEY_FILE") or keys_dir / ALIPAY_GATEWAY_PUBLIC
    return AlipayKeys(_read(str(private_file)), _read(str(public_file)))
