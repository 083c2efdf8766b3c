"""Emulated boots of the shipped samples: each build runs and says which version it is."""

from __future__ import annotations

import pytest

from mcuota.emu.banner import prompt_seen, version_seen
from mcuota.emu.machine import Machine, Stop, boot
from mcuota.emu.parts import STM32F103XB, STM32F407XG, part_for_sample
from mcuota.image.firmware import load_firmware
from mcuota.samples import RELEASES, TARGETS, sample_path

BANNER_START = "\r\nInside Test Application!!\r\nsample-app v"
FEATURES = {"1.0.0": 1, "1.0.1": 1, "1.1.0": 2, "2.0.0": 3}


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("target", TARGETS)
def test_every_sample_boots_and_announces_its_version(target: str, release: str) -> None:
    firmware = load_firmware(sample_path(target, release, "elf"))
    result = boot(firmware.contiguous(), firmware.start, part=part_for_sample(target))
    assert result.stop is Stop.CONDITION, result.summary()
    assert not result.fault
    assert result.uart == f"{BANNER_START}{release} (features {FEATURES[release]})\r\n> "
    assert result.version == release
    assert result.instructions < 20_000
    assert firmware.start <= result.pc < firmware.end


@pytest.mark.parametrize("ext", ["bin", "hex"])
def test_bin_and_hex_boot_like_the_elf(ext: str) -> None:
    elf = load_firmware(sample_path("mcuboot-f407", "1.1.0", "elf"))
    other = load_firmware(sample_path("mcuboot-f407", "1.1.0", ext), load_address=0x08020200)
    a = boot(elf.contiguous(), elf.start, part=STM32F407XG)
    b = boot(other.contiguous(), other.start, part=STM32F407XG)
    assert (a.uart, a.instructions, a.pc) == (b.uart, b.instructions, b.pc)


def test_whole_flash_as_a_bootloader_left_it() -> None:
    # A bootloader at 0x08000000 (here: filler) and the application in its slot at 0x08003000.
    flash = bytearray(b"\xff" * STM32F103XB.flash.size)
    flash[:0x800] = b"\x00\xbf" * 0x400           # "bootloader": NOPs, never executed
    app = sample_path("gizwits-f103", "1.0.1", "bin").read_bytes()
    flash[0x3000:0x3000 + len(app)] = app
    result = boot(bytes(flash), 0x08000000, part=STM32F103XB, vector_table=0x08003000)
    assert result.version == "1.0.1"


def test_stop_condition_and_budget_are_exact_at_slice_boundaries() -> None:
    app = sample_path("gizwits-f103", "2.0.0", "bin").read_bytes()
    limited = boot(app, 0x08003000, part=STM32F103XB, max_instructions=1000)
    assert limited.stop is Stop.LIMIT
    assert limited.instructions == 1000
    assert limited.uart == ""
    banner = boot(app, 0x08003000, part=STM32F103XB, until=version_seen)
    assert banner.stop is Stop.CONDITION
    assert banner.version == "2.0.0"


def test_firmware_that_keeps_running_hits_the_instruction_limit_not_a_fault() -> None:
    app = sample_path("gizwits-f103", "1.0.0", "bin").read_bytes()
    result = boot(app, 0x08003000, part=STM32F103XB, until=None, max_instructions=200_000)
    assert result.stop is Stop.LIMIT
    assert not result.fault
    assert result.instructions == 200_000
    assert result.version == "1.0.0"


def test_shell_answers_typed_ahead_input() -> None:
    app = sample_path("gizwits-f103", "2.0.0", "bin").read_bytes()
    result = boot(app, 0x08003000, part=STM32F103XB, until=None, idle_after=20_000,
                  uart_input=b"version\rhelp\r")
    assert result.stop is Stop.IDLE
    assert "> sample-app v2.0.0 (features 3)\r\n> help    - this text\r\n" in result.uart
    assert "reboot  - software reset\r\n> " in result.uart


def test_interactive_session_with_one_machine() -> None:
    machine = Machine(STM32F103XB)
    machine.load(0x08003000, sample_path("gizwits-f103", "1.1.0", "bin").read_bytes())
    machine.reset(0x08003000)
    assert machine.run(until=prompt_seen).version == "1.1.0"
    machine.send(b"led 100\r")
    reply = machine.run(until=prompt_seen)
    assert reply.output == "ok\r\n> "
    assert reply.stop is Stop.CONDITION
    machine.send(b"stats\r")                       # a 2.0.0 command, unknown to 1.1.0
    assert machine.run(until=prompt_seen).output == "unknown command; try help\r\n> "
    assert machine.instructions == machine.run(1).instructions - 1


def test_reboot_command_is_a_reset_request_and_reset_boots_the_new_image() -> None:
    machine = Machine(STM32F103XB)
    machine.load(0x08003000, sample_path("gizwits-f103", "2.0.0", "bin").read_bytes())
    machine.reset(0x08003000)
    machine.run(until=prompt_seen)
    machine.send(b"reboot\r")
    result = machine.run(until=prompt_seen)
    assert result.stop is Stop.RESET
    assert not result.fault
    assert result.output == "rebooting\r\n"
    assert machine.run(until=prompt_seen) == result      # the core stays in reset until reset()
    # What a device does after an update: new flash contents, then reset through the same vectors.
    machine.load(0x08003000, sample_path("gizwits-f103", "1.0.1", "bin").read_bytes())
    machine.reset(0x08003000)
    again = machine.run(until=prompt_seen)
    assert again.version == "1.0.1"
    assert again.uart.startswith(BANNER_START)


def test_boots_are_deterministic() -> None:
    app = sample_path("interrupt-f429", "2.0.0", "bin").read_bytes()
    part = part_for_sample("interrupt-f429")
    assert boot(app, 0x08020080, part=part) == boot(app, 0x08020080, part=part)
