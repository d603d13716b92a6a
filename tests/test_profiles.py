import json

import pytest
from rich.console import Console

from edgeopt.errors import BudgetExceededError, UsageError
from edgeopt.profiles import SECTIONS, enforce, list_profiles, load_profile, render, size_check
from edgeopt.resources import data_dir

KIB, MIB = 1024, 1024**2
SHIPPED = ["android-arm64", "coral-devboard", "coral-devboard-mini", "coral-usb", "rpi-zero2w", "rpi4", "rpi5"]


def broken_copy(tmp_path, profile: str, old: str, new: str, *, stem: str | None = None) -> str:
    """A shipped profile with one edit, written where load_profile takes it by path."""
    text = (data_dir("device_profiles") / f"{profile}.toml").read_text()
    assert old in text, f"{profile}.toml no longer contains {old!r}: update the test"
    path = tmp_path / f"{stem or profile}.toml"
    path.write_text(text.replace(old, new, 1))
    return str(path)


def usage_error(path: str) -> UsageError:
    with pytest.raises(UsageError) as caught:
        load_profile(path)
    assert caught.value.exit_code == 2
    assert caught.value.message.startswith(f"{path}: ")
    return caught.value


# --- shipped profiles -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_profile_loads_with_sources_and_budgets(name):
    profile = load_profile(name)
    assert profile.name == name
    assert profile.path.name == f"{name}.toml"
    assert set(profile.sources) == set(SECTIONS)
    assert all(len(source) > 20 for source in profile.sources.values())
    assert 0 < profile.ram_budget_bytes < profile.ram_bytes
    assert 0 < profile.storage_budget_bytes < profile.storage_bytes
    assert all(profile.runtime_overhead_bytes(target) > 0 for target in profile.runtimes["supported"])
    assert json.loads(json.dumps(profile.to_json()))["name"] == name


def test_list_profiles_returns_all_seven_sorted_by_name():
    assert [profile.name for profile in list_profiles()] == SHIPPED


def test_rpi4_values():
    profile = load_profile("rpi4")
    assert profile.cpu == {"arch": "aarch64", "triple": "aarch64-linux-gnu", "mcpu": "cortex-a72",
                           "features": ["+neon"], "tvm_target": "raspberry-pi/4b-aarch64", "cores": 4, "freq_mhz": 1500}
    assert profile.ram_bytes == 4096 * MIB
    assert profile.ram_budget_bytes == 2048 * MIB
    assert profile.storage_budget_bytes == int(15258 * MIB * 0.25)
    assert profile.runtime_overhead_bytes("onnx") == 31 * MIB
    assert profile.runtime_overhead_bytes("tflite") == 11 * MIB
    assert profile.runtime_overhead_bytes("coral") == 0  # no entry: not a runtime this board has
    assert profile.param_cache_bytes is None


def test_edgetpu_profiles_carry_the_parameter_cache():
    for name in ("coral-usb", "coral-devboard", "coral-devboard-mini"):
        profile = load_profile(name)
        assert profile.accelerator == {"kind": "edgetpu", "on_chip_kib": 8192, "param_cache_kib": 7065}
        assert profile.param_cache_bytes == 7065 * KIB
        assert profile.runtime_overhead_bytes("coral") == profile.runtime_overhead_bytes("tflite")


def test_android_profile_budget_is_a_small_share_of_a_phone():
    profile = load_profile("android-arm64")
    assert profile.ram_budget_bytes == 6144 * MIB // 8
    assert profile.cpu["triple"] == "aarch64-linux-android"


# --- loading errors -------------------------------------------------------------------------------

def test_unknown_profile_name_lists_the_known_ones():
    with pytest.raises(UsageError) as caught:
        load_profile("rpi3")
    assert caught.value.exit_code == 2
    assert "'rpi3'" in caught.value.message
    assert "known profiles: " + ", ".join(SHIPPED) in caught.value.message


def test_missing_profile_file():
    with pytest.raises(UsageError, match="cannot read device profile .*nowhere.toml"):
        load_profile("/nonexistent/nowhere.toml")


def test_invalid_toml_names_file_and_line(tmp_path):
    path = broken_copy(tmp_path, "rpi4", "cores = 4", "cores = ")
    text = (tmp_path / "rpi4.toml").read_text()
    line = text.splitlines().index("cores = ") + 1
    error = usage_error(path)
    assert "invalid TOML" in error.message
    assert f"line {line}," in error.message


@pytest.mark.parametrize(
    ("profile", "old", "new", "message"),
    [
        pytest.param("rpi4", "ram_mib = 4096", 'ram_mib = "4GB"',
                     "[memory] ram_mib must be a positive integer, got '4GB'", id="wrong-type"),
        pytest.param("rpi4", "cores = 4", "cores = true", "[cpu] cores must be a positive integer, got True",
                     id="bool-is-not-an-int"),
        pytest.param("rpi4", "freq_mhz = 1500", "freq_mhz = -1500", "[cpu] freq_mhz must be a positive integer",
                     id="negative"),
        pytest.param("rpi4", "ram_mib = 4096\n", "", "[memory] missing ram_mib, which must be a positive integer",
                     id="missing-key"),
        pytest.param("rpi4", "ram_mib = 4096", "ram_gib = 4096", "[memory] unknown key ram_gib (did you mean ram_mib?)",
                     id="typo"),
        pytest.param("rpi4", "[cpu]\n", "[cpu]\nturbo = true\n", "[cpu] unknown key turbo; known keys: arch, triple",
                     id="unknown-key"),
        pytest.param("rpi4", "ram_share = 0.5", "ram_share = 1.5",
                     "[budget] ram_share must be a number with 0 < share <= 1, got 1.5", id="share-above-1"),
        pytest.param("rpi4", "storage_share = 0.25", "storage_share = 0",
                     "[budget] storage_share must be a number with 0 < share <= 1, got 0", id="share-zero"),
        pytest.param("rpi4", 'storage_share = 0.25\nsource = "', 'storage_share = 0.25\nsource = "" #',
                     "[budget] source must be a non-empty string", id="empty-source"),
        pytest.param("rpi4", 'name = "rpi4"', 'name = "rpi5"',
                     "name 'rpi5' must equal the file name without .toml ('rpi4')", id="name-not-stem"),
        pytest.param("rpi4", "schema_version = 1", "schema_version = 2", "schema_version must be 1, got 2",
                     id="schema-version"),
        pytest.param("rpi4", 'arch = "aarch64"', 'arch = "arm64"',
                     "[cpu] arch must be one of 'aarch64', 'armv7', 'x86_64', got 'arm64'", id="arch"),
        pytest.param("rpi4", 'features = ["+neon"]', 'features = ["neon"]',
                     "[cpu] features must be a list of LLVM feature strings such as '+neon', got ['neon']",
                     id="feature-sign"),
        pytest.param("rpi4", '"arm-cpu"]', '"tvm"]', "[runtimes] supported must be a non-empty list of targets",
                     id="unknown-target"),
        pytest.param("rpi4", 'supported = ["tflite", "onnx", "arm-cpu"]', 'supported = ["tflite", "onnx"]',
                     "[runtimes] overhead_mib may only name targets that supported lists", id="overhead-unsupported"),
        pytest.param("rpi4", "onnx = 31.0", "onnx = -1.0", "[runtimes] overhead_mib must be a table of target = MiB",
                     id="negative-overhead"),
        pytest.param("rpi4", 'kind = "none"', 'kind = "none"\non_chip_kib = 8192',
                     "[accelerator] on_chip_kib is only allowed when kind = 'edgetpu'", id="edgetpu-key-on-cpu-board"),
        pytest.param("rpi4", 'kind = "none"', 'kind = "edgetpu"\non_chip_kib = 8192',
                     "[accelerator] missing param_cache_kib, which must be a positive integer", id="edgetpu-key-missing"),
        pytest.param("coral-usb", "param_cache_kib = 7065", "param_cache_kib = 9000",
                     "[accelerator] param_cache_kib cannot exceed on_chip_kib", id="cache-larger-than-chip"),
        pytest.param("rpi4", "[budget]", "[budgets]", "unknown key budgets (did you mean budget?)",
                     id="section-typo"),
    ],
)
def test_schema_violation_names_file_and_key(tmp_path, profile, old, new, message):
    error = usage_error(broken_copy(tmp_path, profile, old, new))
    assert message in error.message


def test_missing_source_is_refused(tmp_path):
    text = (data_dir("device_profiles") / "rpi4.toml").read_text()
    budget_source = next(line for line in text.splitlines() if line.startswith("source = \"edgeopt's policy"))
    path = broken_copy(tmp_path, "rpi4", budget_source + "\n", "")
    assert "[budget] missing source" in usage_error(path).message


def test_users_own_profile_with_another_name_loads(tmp_path):
    path = broken_copy(tmp_path, "rpi4", 'name = "rpi4"', 'name = "my-board"', stem="my-board")
    assert load_profile(path).name == "my-board"


# --- size check -----------------------------------------------------------------------------------

def test_size_check_under_budget():
    profile = load_profile("rpi4")
    check = size_check(profile, target="tflite", artefact_bytes=3 * MIB, weight_bytes=3 * MIB, arena_bytes=MIB)
    assert check.ok and check.failures == []
    storage, ram = check.rows
    assert (storage.check, storage.used, storage.budget) == ("storage", 3 * MIB, int(15258 * MIB * 0.25))
    assert (ram.check, ram.used, ram.budget) == ("ram", 3 * MIB + MIB + 11 * MIB, 2048 * MIB)
    assert ram.detail == ("weights 3.0 MiB + activation arena 1.0 MiB + tflite runtime 11.0 MiB; "
                          "budget 50% of 4.0 GiB RAM")
    assert ram.over_by == 0


def test_size_check_over_storage():
    profile = load_profile("rpi-zero2w")
    budget = int(profile.storage_bytes * profile.storage_share)
    check = size_check(profile, target="onnx", artefact_bytes=budget + 3 * KIB, weight_bytes=MIB, arena_bytes=MIB)
    assert not check.ok
    assert [row.check for row in check.failures] == ["storage"]
    assert check.failures[0].over_by == 3 * KIB


def test_size_check_over_ram_counts_weights_arena_and_runtime():
    profile = load_profile("rpi-zero2w")
    budget = int(profile.ram_bytes * profile.ram_share)  # 256 MiB
    overhead = profile.runtime_overhead_bytes("onnx")  # 31 MiB
    arena = 40 * MIB
    weights = budget - overhead - arena + 5 * MIB
    check = size_check(profile, target="onnx", artefact_bytes=weights, weight_bytes=weights, arena_bytes=arena)
    assert [row.check for row in check.failures] == ["ram"]
    ram = check.failures[0]
    assert (ram.used, ram.budget, ram.over_by) == (budget + 5 * MIB, 256 * MIB, 5 * MIB)
    assert not check.to_json()["ok"]


def test_enforce_raises_budget_exceeded_with_human_units():
    profile = load_profile("rpi-zero2w")
    check = size_check(profile, target="onnx", artefact_bytes=MIB, weight_bytes=230 * MIB, arena_bytes=MIB)
    with pytest.raises(BudgetExceededError) as caught:
        enforce(check)
    error = caught.value
    assert error.exit_code == 5
    assert error.message == ("the onnx build does not fit device profile rpi-zero2w: "
                             "ram 262.0 MiB against a budget of 256.0 MiB, over by 6.0 MiB")
    assert "--quant int8" in error.hint and "prune" in error.hint
    assert error.details == check.to_json()


def test_enforce_passes_a_fitting_build():
    check = size_check(load_profile("rpi5"), target="arm-cpu", artefact_bytes=MIB, weight_bytes=MIB, arena_bytes=MIB)
    assert enforce(check) is None


def test_edgetpu_cache_row_is_informational():
    profile = load_profile("coral-usb")
    check = size_check(profile, target="coral", artefact_bytes=9 * MIB, weight_bytes=9 * MIB, arena_bytes=MIB,
                       param_bytes=8 * MIB)
    cache = check.rows[-1]
    assert (cache.check, cache.used, cache.budget) == ("edgetpu-param-cache", 8 * MIB, 7065 * KIB)
    assert cache.informational and not cache.ok
    assert cache.over_by == 8 * MIB - 7065 * KIB
    assert cache.detail.startswith("informational:")
    assert check.ok and check.failures == []
    enforce(check)  # does not raise


def test_edgetpu_cache_row_only_with_an_edgetpu_and_param_bytes():
    rpi4 = size_check(load_profile("rpi4"), target="tflite", artefact_bytes=1, weight_bytes=1, arena_bytes=1,
                      param_bytes=8 * MIB)
    coral = size_check(load_profile("coral-usb"), target="coral", artefact_bytes=1, weight_bytes=1, arena_bytes=1)
    assert [row.check for row in rpi4.rows] == [row.check for row in coral.rows] == ["storage", "ram"]


def test_size_check_refuses_a_target_the_device_does_not_run():
    with pytest.raises(UsageError, match="rpi4 does not run target 'coral'"):
        size_check(load_profile("rpi4"), target="coral", artefact_bytes=1, weight_bytes=1, arena_bytes=1)


def test_render_shows_every_row_with_margin_and_status():
    profile = load_profile("coral-usb")
    check = size_check(profile, target="coral", artefact_bytes=5 * 1024**3, weight_bytes=MIB, arena_bytes=MIB,
                       param_bytes=8 * MIB)
    table = render(check)
    assert [column.header for column in table.columns] == ["check", "used", "budget", "margin", "status"]
    console = Console(record=True, width=200)
    console.print(table)
    text = console.export_text()
    assert "OVER" in text and "over (info only)" in text and "ok" in text
    assert "5.0 GiB" in text and "-1.3 GiB" in text  # storage: 5 GiB against 3.7 GiB
