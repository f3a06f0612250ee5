"""One definition per concept: the config's defaults, its schema, the report captions and the
docs say what ``clonetrack.vocabulary`` says."""

import re
from pathlib import Path

import yaml
from clonetrack import vocabulary
from clonetrack.clones import dynamics, patient_clones

REPO = Path(__file__).resolve().parents[2]
CONFIG = yaml.safe_load((REPO / "config/config.yaml").read_text())
SCHEMA = yaml.safe_load((REPO / "config/schemas/config.schema.yaml").read_text())
DYNAMICS = CONFIG["clones"]["dynamics"]


def test_config_defaults_are_the_vocabulary():
    assert tuple(DYNAMICS["resistant_classes"]) == vocabulary.RESISTANT_CLASSES
    assert tuple(DYNAMICS["sensitive_classes"]) == vocabulary.SENSITIVE_CLASSES
    assert tuple(DYNAMICS["surviving_classes"]) == vocabulary.SURVIVING_CLASSES
    assert tuple(CONFIG["clones"]["source_precedence"]) == vocabulary.CLONE_SOURCES
    dyn = SCHEMA["properties"]["clones"]["properties"]["dynamics"]["properties"]
    for name in ("resistant_classes", "sensitive_classes", "surviving_classes"):
        assert set(dyn[name]["items"]["enum"]) <= set(vocabulary.CLONE_CLASSES), name
        assert tuple(dyn[name]["default"]) == getattr(vocabulary, name.upper()), name
    sources = SCHEMA["properties"]["clones"]["properties"]["source_precedence"]
    assert tuple(sources["items"]["enum"]) == tuple(sources["default"]) == vocabulary.CLONE_SOURCES


def test_code_defaults_are_the_vocabulary():
    import inspect

    classify = inspect.signature(dynamics.classify_clones).parameters
    assert classify["resistant_classes"].default == vocabulary.RESISTANT_CLASSES
    assert classify["sensitive_classes"].default == vocabulary.SENSITIVE_CLASSES
    model = inspect.signature(dynamics.cohort_model).parameters
    assert model["surviving_classes"].default == vocabulary.SURVIVING_CLASSES
    assert patient_clones.SOURCES == vocabulary.CLONE_SOURCES


def test_captions_name_the_configured_sets_not_their_own():
    report = REPO / "workflow" / "report"
    dynamics_caption = (report / "clone_dynamics.rst").read_text()
    assert 'config["clones"]["dynamics"]["resistant_classes"]' in dynamics_caption
    assert 'config["clones"]["dynamics"]["sensitive_classes"]' in dynamics_caption
    overview = (report / "clone_overview.rst").read_text()
    assert 'config["clones"]["dynamics"]["surviving_classes"]' in overview
    # no caption spells out a resistant set of its own
    for caption in report.glob("*.rst"):
        text = caption.read_text().lower()
        assert not re.search(r"resistant\s*(=|\(|:)\s*(expanding|persistent)", text), caption.name


def test_docs_state_the_default_sets():
    text = (REPO / "docs" / "clones.md").read_text()

    def stated(name):
        match = re.search(rf"`{name}` = \[([^\]]+)\]", text)
        assert match, name
        return tuple(w.strip() for w in match.group(1).replace("\n", " ").split(","))

    assert stated("resistant_classes") == vocabulary.RESISTANT_CLASSES
    assert stated("sensitive_classes") == vocabulary.SENSITIVE_CLASSES
    assert stated("surviving_classes") == vocabulary.SURVIVING_CLASSES
    assert "expanding or persistent" not in text
