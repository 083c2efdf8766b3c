"""``mcuota image bin2c``: the header must compile, and a C program built from it must see exactly the
firmware's bytes (length and checksum computed in C, compared with Python)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import require_tool
from mcuota.image.bin2c import to_c_array

C_PROGRAM = """
#include <stdio.h>
#include "{header}"
#include "{header}" /* the guard makes a second include harmless */

int main(void) {{
    unsigned long hash = 2166136261UL; /* FNV-1a, 32 bit */
    unsigned int i;
    for (i = 0; i < {name}_len; i++) {{
        hash = ((hash ^ {name}[i]) * 16777619UL) & 0xffffffffUL;
    }}
    printf("%u %u %lu\\n", {name}_len, (unsigned int)sizeof({name}), hash);
    return 0;
}}
"""


def fnv1a(data: bytes) -> int:
    value = 2166136261
    for byte in data:
        value = ((value ^ byte) * 16777619) & 0xFFFFFFFF
    return value


def compile_and_run(tmp_path: Path, header: Path, name: str) -> tuple[int, int, int]:
    gcc = require_tool("gcc")
    source = tmp_path / "main.c"
    source.write_text(C_PROGRAM.format(header=header.name, name=name))
    exe = tmp_path / "main"
    subprocess.run([gcc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-I", str(header.parent),
                    "-o", str(exe), str(source)], check=True, capture_output=True, text=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split()
    length, size, digest = (int(x) for x in out)
    return length, size, digest


@pytest.mark.parametrize(("ext", "per_line"), [("bin", None), ("hex", "16"), ("elf", "1")])
def test_header_compiles_and_holds_the_firmware(sample, mcuota, tmp_path: Path, ext: str,
                                                per_line: str | None) -> None:
    expected = sample("dapboot-f103", "1.1.0", "bin").read_bytes()
    header = tmp_path / "ota_image.h"
    extra = ["--per-line", per_line] if per_line else []
    proc = mcuota("image", "bin2c", sample("dapboot-f103", "1.1.0", ext), header, *extra)
    assert proc.returncode == 0, proc.stderr
    text = header.read_text()
    assert "#ifndef OTA_IMAGE_H" in text
    assert text.rstrip().endswith("#endif /* OTA_IMAGE_H */")
    if ext != "bin":
        assert "loads at 0x08002000" in text
    assert compile_and_run(tmp_path, header, "ota_image") == (len(expected), len(expected), fnv1a(expected))


def test_explicit_name_and_odd_file_names(sample, mcuota, tmp_path: Path) -> None:
    data = sample("gizwits-f103", "1.0.0", "bin").read_bytes()
    header = tmp_path / "fw.h"
    assert mcuota("image", "bin2c", sample("gizwits-f103", "1.0.0", "bin"), header,
                  "--name", "app_image").returncode == 0
    assert compile_and_run(tmp_path, header, "app_image") == (len(data), len(data), fnv1a(data))
    odd = tmp_path / "1st-image.v2.h"
    assert mcuota("image", "bin2c", sample("gizwits-f103", "1.0.0", "bin"), odd).returncode == 0
    assert "_1st_image_v2[]" in odd.read_text()


def test_bytes_that_matter_in_c_survive() -> None:
    """Bytes that would be trouble in a string literal (NUL, quote, backslash, 0xff) in a hex array."""
    data = bytes([0, 0x22, 0x5C, 0xFF, 0x0A, 0x3F, 0x3F, 0x2F])
    text = to_c_array(data, "tricky", header_guard="TRICKY_H")
    assert "0x00, 0x22, 0x5c, 0xff, 0x0a, 0x3f, 0x3f, 0x2f" in text


def test_bad_name_and_empty_input_fail_cleanly(mcuota, tmp_path: Path) -> None:
    src = tmp_path / "a.bin"
    src.write_bytes(b"\x01\x02")
    out = tmp_path / "a.h"
    proc = mcuota("image", "bin2c", src, out, "--name", "not-valid")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "not a valid C identifier" in proc.stderr
    assert not out.exists()
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    proc = mcuota("image", "bin2c", empty, out)
    assert proc.returncode == 2
    assert "is empty" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "empty.bin"]
