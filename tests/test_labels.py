import numpy as np
import pytest

from multimnist.labels import CSV_COLUMNS, LETTERS, letter_index, letters_to_vector, vector_to_letters


def test_letters_roundtrip_and_case_share_one_label():
    vec = letters_to_vector("AdfHjlprtyZ")
    assert vec.dtype == np.uint8 and vec.sum() == 11
    assert vector_to_letters(vec) == "adfhjlprtyz"
    assert letter_index("Q") == letter_index("q") == 16


def test_csv_columns_are_dacons_header():
    assert ",".join(CSV_COLUMNS) == "index," + ",".join("abcdefghijklmnopqrstuvwxyz")
    assert len(LETTERS) == 26


@pytest.mark.parametrize("bad", ["1", "ab", "é", ""])
def test_letter_index_rejects_non_letters(bad):
    with pytest.raises(ValueError, match="not a letter"):
        letter_index(bad)
