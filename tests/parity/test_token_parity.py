"""C vs pure-Python parity of the token estimate's accented-text rule."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routecore import _fast
from routecore._fast import _constants as K

if not _fast.HAVE_EXTENSIONS:
    pytest.skip("routecore._fast._core is not built", allow_module_level=True)

# Latin words of every length around the knees, some accented, so texts land
# on both sides of ACCENTED_TEXT_PERMILLE (and exactly on it).
_word = st.text(alphabet=st.sampled_from(list("abcdefghijklmnopqrstuvwxyzABCZéüßñçÀ")), min_size=1)
_latin = st.lists(_word, max_size=80).map(" ".join)


def _at_threshold() -> str:
    # 1 accented letter in 1000 // PERMILLE Latin letters: density exactly at the threshold.
    letters = 1000 // K.ACCENTED_TEXT_PERMILLE
    body = "verylongword " * ((letters - 1) // 12)
    return body + "é" + "a" * (letters - 1 - 12 * ((letters - 1) // 12))


@pytest.mark.parametrize(
    "text",
    [
        _at_threshold(),
        _at_threshold() + "a",
        "Die Konfigurationsdatei konnte nicht gelesen werden, überprüfen Sie die Zugriffsrechte.",
        "Impossible de créer le répertoire : vérifiez les permissions et réessayez.",
        "Ünïcödé wörds ônly",
        "café " + "plain english words without any accents at all " * 10,
    ],
)
def test_accented_cases_agree(text: str) -> None:
    """C and Python agree around and on the accented-text threshold."""
    assert _fast.count_tokensC(text) == _fast.count_tokensPy(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_latin)
def test_latin_texts_agree(text: str) -> None:
    """C and Python agree on Latin texts of any accent density."""
    assert _fast.count_tokensC(text) == _fast.count_tokensPy(text)
