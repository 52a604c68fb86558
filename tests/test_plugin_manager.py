"""Plugin loading: one at a time, broken ones skipped (or fatal in strict mode), blocked by name."""

from __future__ import annotations

import pytest

from encoder_recipes.plugin_manager import PluginError, PluginWarning, load_plugins
from encoder_recipes.registry import DuplicateNameError, build_registries

GOOD = """
from encoder_recipes.hookspecs import hookimpl
from encoder_recipes.components.kinds import LRSchedule

class Half(LRSchedule):
    '''Always one half.'''
    name = "half"
    def multiplier(self, clock):
        return 0.5

@hookimpl
def encoder_recipes_register_lr_schedules():
    return [Half]
"""


def test_shipped_plugins_load_through_entry_points():
    loaded = load_plugins(strict=True)
    assert {"builtin", "ja", "fi", "zh"} <= set(loaded.plugins)
    for name in ("builtin", "ja", "fi", "zh"):  # other installed plugins may be there too
        assert loaded.plugins[name].distribution == "encoder-recipes"
        assert loaded.plugins[name].path.endswith("plugin.py")


def test_good_plugin_contributes_components(write_plugin):
    ep = write_plugin("tplug_good", GOOD)
    reg = build_registries(load_plugins([ep], strict=True))
    assert reg.components["lr_schedule"].get("half").summary() == "Always one half."
    assert reg.contributions("good") == {"lr_schedule": ["half"]}
    assert reg.loaded.plugins["good"].hooks == ["encoder_recipes_register_lr_schedules"]


def test_plugin_failing_on_import_is_skipped_with_a_warning(write_plugin):
    bad = write_plugin("tplug_bad", "raise RuntimeError('boom at import')\n")
    good = write_plugin("tplug_good", GOOD)
    with pytest.warns(PluginWarning, match=r"plugin 'bad' .*import.*boom at import"):
        loaded = load_plugins([bad, good])
    assert set(loaded.plugins) == {"good"}
    assert loaded.failures[0].stage == "import"


def test_strict_mode_turns_a_broken_plugin_into_an_error(write_plugin, monkeypatch):
    bad = write_plugin("tplug_bad", "import no_such_module_anywhere\n")
    monkeypatch.setenv("ENCODER_RECIPES_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="'bad'.*ModuleNotFoundError"):
        load_plugins([bad])


def test_misspelt_hook_is_an_error_not_a_silent_noop(write_plugin):
    typo = write_plugin("tplug_typo", """
        from encoder_recipes.hookspecs import hookimpl
        @hookimpl
        def encoder_recipes_register_lr_schedule():  # missing the final s
            return []
    """)
    with pytest.raises(PluginError, match="encoder_recipes_register_lr_schedule"):
        load_plugins([typo], strict=True)
    with pytest.warns(PluginWarning, match="typo"):
        assert "typo" not in load_plugins([typo]).plugins


def test_implementation_with_unknown_argument_is_refused(write_plugin):
    ep = write_plugin("tplug_args", """
        from encoder_recipes.hookspecs import hookimpl
        @hookimpl
        def encoder_recipes_word_segmenter(language, dialect):
            return None
    """)
    with pytest.raises(PluginError, match="dialect"):
        load_plugins([ep], strict=True)


def test_disable_list_blocks_plugins(write_plugin, monkeypatch):
    bad = write_plugin("tplug_bad", "raise RuntimeError('never imported')\n")
    good = write_plugin("tplug_good", GOOD)
    monkeypatch.setenv("ENCODER_RECIPES_DISABLE_PLUGINS", "bad, other")
    loaded = load_plugins([bad, good], strict=True)
    assert set(loaded.plugins) == {"good"}


def test_name_claimed_by_two_plugins_names_both(write_plugin):
    one = write_plugin("tplug_one", GOOD)
    two = write_plugin("tplug_two", GOOD)
    with pytest.raises(DuplicateNameError, match=r"'half' is registered by both plugin 'one' and plugin 'two'"):
        build_registries(load_plugins([one, two], strict=True))


def test_plugin_raising_inside_a_hook_is_skipped_and_named(write_plugin):
    ep = write_plugin("tplug_hookfail", """
        from encoder_recipes.hookspecs import hookimpl
        @hookimpl
        def encoder_recipes_register_maskings():
            raise ValueError("broken inside")
    """)
    good = write_plugin("tplug_good", GOOD)
    with pytest.warns(PluginWarning, match=r"'hookfail'.*encoder_recipes_register_maskings.*broken inside"):
        reg = build_registries(load_plugins([ep, good]))
    assert "half" in reg.components["lr_schedule"]


def test_component_of_the_wrong_kind_is_refused(write_plugin):
    ep = write_plugin("tplug_kind", GOOD.replace("encoder_recipes_register_lr_schedules", "encoder_recipes_register_maskings"))
    from encoder_recipes.registry import RegistryError

    with pytest.raises(RegistryError, match="kind is 'lr_schedule', not 'masking'"):
        build_registries(load_plugins([ep], strict=True))
