"""cel_limits: each static limit at its edge with its message, what resets or nests a member
chain, the one-line clip, and the cost estimate of each kind of operand and operator."""

from __future__ import annotations

import pytest

from taskdaemon.pipeline.cel_limits import (
    IN_PROCESS_DATA_READS,
    IN_PROCESS_DATA_TERMS,
    MAX_CHAIN,
    MAX_LENGTH,
    MAX_NESTING,
    MAX_OPERATORS,
    MAX_UNREADABLE,
    CostEstimate,
    LimitError,
    check_limits,
    clip,
    estimate_cost,
)


def _refusal(source: str) -> str:
    """The message ``check_limits`` refuses ``source`` with."""
    with pytest.raises(LimitError) as raised:
        check_limits(source)
    return str(raised.value)


# --- clip -------------------------------------------------------------------------------------


def test_clip_joins_the_lines_of_a_short_source() -> None:
    """A source within the width comes back whole, its whitespace runs made single spaces."""
    assert "a && b" == clip("a\n  &&\tb", width=60)


def test_clip_keeps_a_source_exactly_as_wide_as_the_width() -> None:
    """A source of exactly ``width`` characters is not cut."""
    assert "abcde" == clip("abcde", width=5)


def test_clip_cuts_a_longer_source_to_the_width_with_an_ellipsis() -> None:
    """A source one character wider is cut to ``width - 1`` characters and an ellipsis."""
    assert "abcd…" == clip("abcdef", width=5)


# --- check_limits: length, nesting, operators -----------------------------------------------


def test_an_expression_of_the_longest_length_is_accepted() -> None:
    """``MAX_LENGTH`` characters are within the limit."""
    assert None is check_limits("1" + " " * (MAX_LENGTH - 1))


def test_an_expression_one_character_longer_is_refused_with_its_length() -> None:
    """One character over ``MAX_LENGTH`` is refused with the length and the limit."""
    expected = f"is {MAX_LENGTH + 1} characters long (the limit is {MAX_LENGTH})"
    assert expected == _refusal("1" + " " * MAX_LENGTH)


@pytest.mark.parametrize(("opening", "closing"), [("(", ")"), ("[", "]"), ("{", "}")])
def test_brackets_nested_to_the_limit_are_accepted(opening: str, closing: str) -> None:
    """Each kind of bracket may nest ``MAX_NESTING`` levels deep."""
    assert None is check_limits(opening * MAX_NESTING + "1" + closing * MAX_NESTING)


@pytest.mark.parametrize(("opening", "closing"), [("(", ")"), ("[", "]"), ("{", "}")])
def test_brackets_nested_one_level_deeper_are_refused(opening: str, closing: str) -> None:
    """One level over ``MAX_NESTING``, of any kind of bracket, is refused with the limit."""
    source = opening * (MAX_NESTING + 1) + "1" + closing * (MAX_NESTING + 1)
    assert f"nests brackets deeper than {MAX_NESTING} levels" == _refusal(source)


@pytest.mark.parametrize(("opening", "closing"), [("(", ")"), ("[", "]"), ("{", "}")])
def test_a_closed_bracket_leaves_its_level(opening: str, closing: str) -> None:
    """Brackets closed one after another never nest: 40 in a row are accepted."""
    assert None is check_limits(f"{opening}1{closing}" * (MAX_NESTING + 8))


def test_a_stray_closing_bracket_is_no_error() -> None:
    """A closing bracket with none open is left to the parser, not a limit error."""
    assert None is check_limits("a)")


def test_stray_closing_brackets_do_not_lend_depth() -> None:
    """Closing brackets with none open do not let later brackets nest deeper."""
    source = ")" * 5 + "(" * (MAX_NESTING + 1) + "1" + ")" * (MAX_NESTING + 1)
    assert f"nests brackets deeper than {MAX_NESTING} levels" == _refusal(source)


def test_depth_after_a_closed_pair_starts_again_from_none() -> None:
    """After ``()`` brackets may again nest ``MAX_NESTING`` levels deep."""
    assert None is check_limits("()" + "(" * MAX_NESTING + "1" + ")" * MAX_NESTING)


def test_closing_a_bracket_leaves_only_one_level() -> None:
    """Inside one open bracket, a closed pair still leaves one level in use."""
    source = "(" + "(1)" + "(" * MAX_NESTING + "1" + ")" * (MAX_NESTING + 1)
    assert f"nests brackets deeper than {MAX_NESTING} levels" == _refusal(source)


def test_brackets_in_strings_and_comments_do_not_nest() -> None:
    """Brackets inside a string or after ``//`` are not counted."""
    deep = "(" * (MAX_NESTING + 1)
    assert None is check_limits(f"'{deep}' == \"{deep}\" // {deep}")


def test_as_many_operators_as_the_limit_are_accepted() -> None:
    """``MAX_OPERATORS`` operators are within the limit."""
    assert None is check_limits("1" + " + 1" * MAX_OPERATORS)


def test_one_operator_more_is_refused() -> None:
    """One operator over ``MAX_OPERATORS`` is refused with the limit."""
    expected = f"has more than {MAX_OPERATORS} operators"
    assert expected == _refusal("1" + " + 1" * (MAX_OPERATORS + 1))


@pytest.mark.parametrize(
    "operator", ["-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "&&", "||", "in"]
)
def test_every_binary_operator_counts(operator: str) -> None:
    """Each binary operator counts toward ``MAX_OPERATORS``."""
    expected = f"has more than {MAX_OPERATORS} operators"
    assert expected == _refusal("1" + f" {operator} 1" * (MAX_OPERATORS + 1))


def test_negations_and_conditionals_count_as_operators() -> None:
    """``!`` and ``?`` count toward ``MAX_OPERATORS`` (``:`` does not)."""
    expected = f"has more than {MAX_OPERATORS} operators"
    assert expected == _refusal("!a ? 1 : " * ((MAX_OPERATORS + 2) // 2) + "1")


def test_commas_and_colons_are_not_operators() -> None:
    """A map literal with more commas and colons than ``MAX_OPERATORS`` is accepted."""
    assert None is check_limits("{" + ", ".join(f"{i}: 1" for i in range(MAX_OPERATORS)) + "}")


# --- check_limits: member chains --------------------------------------------------------------


def test_a_field_chain_of_the_longest_length_is_accepted() -> None:
    """``MAX_CHAIN`` field steps after one operand are within the limit."""
    assert None is check_limits("a" + ".b" * MAX_CHAIN)


def test_a_field_chain_one_step_longer_is_refused() -> None:
    """One field step over ``MAX_CHAIN`` is refused with the limit."""
    expected = f"has a member chain longer than {MAX_CHAIN} steps"
    assert expected == _refusal("a" + ".b" * (MAX_CHAIN + 1))


def test_an_index_chain_of_the_longest_length_is_accepted() -> None:
    """``MAX_CHAIN`` index steps after one operand are within the limit."""
    assert None is check_limits("a" + "[0]" * MAX_CHAIN)


@pytest.mark.parametrize("operand", ["a", "_a", "1", "'s'", '"s"', "f()", "[1]", "{}"])
def test_index_steps_after_any_operand_make_a_chain(operand: str) -> None:
    """``[`` after a name, number, string or closing bracket is an index step of a chain."""
    expected = f"has a member chain longer than {MAX_CHAIN} steps"
    assert expected == _refusal(operand + "[0]" * (MAX_CHAIN + 1))


def test_calls_after_an_operand_are_not_chain_steps() -> None:
    """``(`` after an operand (a call) is no step: 65 calls in a row are accepted."""
    assert None is check_limits("f" + "(1)" * (MAX_CHAIN + 1))


@pytest.mark.parametrize("separator", [" + ", ", ", ": ", " ? "])
def test_an_operator_comma_or_colon_ends_a_chain(separator: str) -> None:
    """After an operator, ``,`` or ``:``, a new chain starts from no steps."""
    half = "a" + ".b" * (MAX_CHAIN // 2 + 1)
    assert None is check_limits(f"[{half}{separator}{half}]")


def test_a_chain_inside_brackets_is_counted_apart() -> None:
    """A chain inside brackets does not add to the one outside, which goes on after them."""
    inner = "x" + ".y" * MAX_CHAIN
    outer = "a" + ".b" * (MAX_CHAIN // 2)
    assert None is check_limits(f"{outer}.f({inner})" + ".c" * (MAX_CHAIN // 2 - 1))


def test_the_outer_chain_goes_on_after_the_brackets() -> None:
    """Steps before and after a call's brackets add up to one chain."""
    outer = "a" + ".b" * (MAX_CHAIN // 2)
    expected = f"has a member chain longer than {MAX_CHAIN} steps"
    assert expected == _refusal(f"{outer}.f(1)" + ".c" * (MAX_CHAIN // 2))


# --- estimate_cost ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "cost"),
    [
        ("1", 1),
        ("'abc'", 1),
        (".5", 1),
        ("1 + 2", 3),
        ("a || b", 3),
        ("!true", 2),
        ("--1", 3),
        ("a.b", 2),
        (".request.a", 2),
        ("request[0]", 3),
        ("[1, 2,]", 3),
        ("true ? 1 + 2 : 3", 5),
        ("true ? 1 : 2 + 3", 5),
        ("size(request.a)", 3),
        ("Name{a: 1}", 3),
        ("{1: 2, 3: 4}", 5),
        ("[1, 2].map()", 4),
    ],
)
def test_the_cost_of_an_expression_without_comprehensions(source: str, cost: int) -> None:
    """Each operand, operator, index, field and call costs one step, plus its parts."""
    assert CostEstimate(cost, False) == estimate_cost(source)


def test_a_comprehension_costs_its_list_size_times_its_body() -> None:
    """``[1, 2, 3].map(x, x * 2)``: the list (4) and three times the body (5)."""
    assert CostEstimate(19, False) == estimate_cost("[1, 2, 3].map(x, x * 2)")


def test_a_comprehension_over_the_run_s_data_assumes_its_size_and_says_so() -> None:
    """A list from the run's data is assumed to hold 100 elements and is reported as such."""
    assert CostEstimate(502, True) == estimate_cost("request.items.all(x, x > 1)")


def test_map_keeps_the_list_size_for_the_next_comprehension() -> None:
    """After ``map`` the list has its size still: the next comprehension walks it all."""
    assert CostEstimate(15, False) == estimate_cost("[1, 2].map(x, x).map(y, y)")


def test_filter_keeps_the_list_size_for_the_next_comprehension() -> None:
    """After ``filter`` the list has its size still (at most)."""
    assert CostEstimate(15, False) == estimate_cost("[1, 2].filter(x, x).map(y, y)")


@pytest.mark.parametrize("macro", ["all", "exists", "exists_one"])
def test_a_predicate_comprehension_yields_one_value(macro: str) -> None:
    """``all``, ``exists`` and ``exists_one`` are comprehensions whose result is one value."""
    assert CostEstimate(12, False) == estimate_cost(f"[1, 2].{macro}(x, x).map(y, y)")


def test_a_mapped_literal_is_not_the_run_s_data() -> None:
    """A comprehension over ``map`` of a literal list does not iterate the run's data."""
    assert CostEstimate(15, False) == estimate_cost("[1, 2].map(x, x).all(y, y)")


def test_a_mapped_data_list_is_still_the_run_s_data() -> None:
    """``map`` over the run's data keeps the assumed size for the next comprehension."""
    assert CostEstimate(602, True) == estimate_cost("request.items.map(x, x).all(y, y)")


@pytest.mark.parametrize("literal", ["true", "false", "null"])
def test_a_keyword_literal_is_one_value(literal: str) -> None:
    """``true``, ``false`` and ``null`` are single values, not names of the run's data."""
    assert CostEstimate(4, False) == estimate_cost(f"({literal}).all(x, x)")


def test_a_string_literal_is_one_value() -> None:
    """A string literal is a single value for a comprehension."""
    assert CostEstimate(4, False) == estimate_cost("'abc'.all(x, x)")


def test_a_message_literal_is_one_value() -> None:
    """``Name{field: value}`` is a single value, costing its fields."""
    assert CostEstimate(6, False) == estimate_cost("Name{a: 1}.all(x, x)")


def test_a_map_literal_has_as_many_elements_as_keys() -> None:
    """A map literal's size is its number of keys."""
    assert CostEstimate(11, False) == estimate_cost("{1: 2, 3: 4}.all(k, k)")


def test_a_global_function_s_result_is_assumed_to_be_data() -> None:
    """``size(...)`` and other calls give a value of the run's data, of the assumed size."""
    assert CostEstimate(303, True) == estimate_cost("size([1]).all(x, x)")


def test_an_index_s_result_is_assumed_to_be_data() -> None:
    """An element of a list may be a list from the data: assumed size, and data."""
    assert CostEstimate(305, True) == estimate_cost("[1, 2][0].all(x, x)")


def test_a_field_s_result_is_assumed_to_be_data() -> None:
    """A field of a value is assumed to be the run's data, of the assumed size."""
    assert CostEstimate(303, True) == estimate_cost("[1].a.all(x, x)")


def test_a_method_s_result_is_assumed_to_be_data() -> None:
    """A method other than a comprehension gives a value of the assumed size, from the data."""
    assert CostEstimate(304, True) == estimate_cost("[1, 2].size().all(x, x)")


def test_a_sum_of_lists_has_their_sizes_added() -> None:
    """``+`` of two lists has both sizes; ``*`` binds tighter and gives one value."""
    assert CostEstimate(18, False) == estimate_cost("([1, 2] + [3] * [4]).map(x, x)")


def test_a_plus_chain_of_the_run_s_data_is_data_bound_past_its_terms() -> None:
    """Joining the run's values by ``+`` stays cheap up to the limit's terms; one more, and
    the work depends on their real size (each ``+`` copies all before it)."""
    chain = [f"request.v{i}" for i in range(IN_PROCESS_DATA_TERMS + 1)]
    within, over = " + ".join(chain[:-1]), " + ".join(chain)
    assert (4, CostEstimate(11, False), CostEstimate(14, True)) == (
        IN_PROCESS_DATA_TERMS,
        estimate_cost(within),
        estimate_cost(over),
    )


def test_reads_of_the_run_s_variables_past_the_limit_are_data_bound() -> None:
    """Each read of a variable copies its value: up to the limit's reads an expression stays
    cheap; one more, and its work grows with the value's real size."""
    within = " || ".join(["request.s == 'a'"] * IN_PROCESS_DATA_READS)
    over = f"{within} || stages.a.status == 'x'"
    bound = "[1].all(x, " + " || ".join(["x == 1"] * (IN_PROCESS_DATA_READS + 1)) + ")"
    found = [estimate_cost(source) for source in (within, over, bound)]
    assert (16, [False, True, False]) == (
        IN_PROCESS_DATA_READS,
        [e.iterates_data if e is not None else None for e in found],
    )


_SEVENTEEN = str(list(range(17)))


@pytest.mark.parametrize(
    ("source", "data_bound"),
    [
        ("[1, 2].map(x, request.s)", False),  # 1 + 2 copies: the body's, the result's
        ("[1, 2, 3, 4, 5].map(x, request.s)", False),  # 15
        ("[1, 2, 3, 4, 5, 6].map(x, request.s)", True),  # 21
        ("[1, 2].filter(x, stages.a.outputs.s == 'y')", False),
        (f"{_SEVENTEEN}.filter(x, stages.a.outputs.s == 'y')", True),
        ("[1, 2].exists(x, has(event.k))", False),
        ("[1, 2, 3, 4, 5, 6, 7, 8].exists(x, x == event.a || x == event.b)", False),  # 16
        ("[1, 2, 3, 4, 5, 6, 7, 8, 9].exists(x, x == event.a || x == event.b)", True),
        ("[1, 2, 3].map(x, [1, 2, 3].filter(y, y > request.n))", True),  # 6 times 3
        ("[1, 2, 3].filter(x, x > request.n).size() > request.m", False),
        ("[[1], [2]].map(x, x.map(y, y + 1))", True),  # an element's size is unknown
        ("[1, 2].map(x, [3, 4].map(y, x + y))", False),
        ("[1, 2].map(request, request + 1)", False),  # the name it binds is not the run's
        ("[1, 2].exists(x, x == 2) && request.n > 0", False),
    ],
)
def test_a_comprehension_s_body_reads_the_run_s_data_once_an_element(
    source: str, data_bound: bool
) -> None:
    """Over a literal list too, a body reading the run's variables is copied what it reads at
    each element (and a ``map`` its growing result): its reads count once an element (for a
    ``map``, once more for each result before it) toward the limit of reads. Names the
    comprehensions bind are not read."""
    estimate = estimate_cost(source)
    assert estimate is not None
    assert data_bound == estimate.iterates_data


@pytest.mark.parametrize(
    ("source", "data_bound"),
    [
        ("(request.a + request.b) + (request.c + request.d) + request.e", True),
        ("request.a + (request.b + request.c + request.d + request.e)", True),
        ("x ? 1 : request.a + request.b + request.c + request.d + request.e", True),
        ("-(request.a + request.b + request.c + request.d + request.e)", True),
        ("request.a + 1 + 2 + 3 + 4 + 5 + 6", False),
        ("'a' + 'b' + 'c' + 'd' + 'e' + 'f'", False),
        ("size(request.a + request.b) + size(request.c + request.d) + size(request.e)", False),
        ("request.a + request.b == request.c + request.d + request.e", False),
    ],
)
def test_the_terms_of_a_plus_chain_are_counted_through_brackets_not_past_it(
    source: str, data_bound: bool
) -> None:
    """Five of the run's values joined, however the chain is bracketed or negated, are
    data-bound; literals are not the run's data, and a call or a comparison ends a chain."""
    estimate = estimate_cost(source)
    assert estimate is not None
    assert data_bound == estimate.iterates_data


def test_another_operator_yields_one_value() -> None:
    """An operator other than ``+`` gives a single value."""
    assert CostEstimate(9, False) == estimate_cost("([1, 2] - [3]).map(x, x)")


def test_a_sum_with_the_run_s_data_is_data() -> None:
    """A list added to one from the run's data is data too."""
    assert CostEstimate(308, True) == estimate_cost("([1] + request.a).all(x, x)")


def test_another_operator_with_the_run_s_data_is_not_data() -> None:
    """An operator other than ``+`` gives a single value, not a collection of the data."""
    assert CostEstimate(8, False) == estimate_cost("(request.a - [1]).all(x, x)")


def test_a_negation_keeps_its_operand_s_size() -> None:
    """``-`` before a list costs one step more and keeps the list's size."""
    assert CostEstimate(10, False) == estimate_cost("(-[1, 2]).map(x, x)")


def test_a_negation_keeps_its_operand_from_the_data() -> None:
    """``-`` before a value of the run's data keeps it the run's data."""
    assert CostEstimate(303, True) == estimate_cost("(-request.a).all(x, x)")


def test_a_conditional_has_its_larger_branch_s_size() -> None:
    """A conditional's list is as large as its larger branch's."""
    assert CostEstimate(15, False) == estimate_cost("(true ? [1] : [1, 2, 3]).map(x, x)")


def test_a_conditional_with_data_in_a_branch_is_data() -> None:
    """A conditional one of whose branches is the run's data is the run's data."""
    assert CostEstimate(304, True) == estimate_cost("(true ? [1] : request.a).all(x, x)")


def test_a_conditional_with_data_in_its_first_branch_is_data() -> None:
    """A conditional whose first branch is the run's data is the run's data."""
    assert CostEstimate(304, True) == estimate_cost("(true ? request.a : [1]).all(x, x)")


@pytest.mark.parametrize("source", ["1 + #", "a +", "[1 2]", "(1", "(1]", "{1 2}", "1 2", ""])
def test_what_does_not_parse_has_no_estimate(source: str) -> None:
    """A source this estimator cannot parse (or with pieces left over) has no estimate."""
    assert None is estimate_cost(source)


def test_nesting_too_deep_for_the_parser_has_no_estimate() -> None:
    """Parentheses nested past Python's recursion limit give no estimate, not an error."""
    assert None is estimate_cost("(" * 1000 + "1" + ")" * 1000)


def test_a_bracket_at_the_start_is_no_index_step() -> None:
    """A list at the very start is an operand, not an index: 64 index steps may follow it."""
    assert None is check_limits("[0]" + "[0]" * MAX_CHAIN)


def test_a_chain_after_an_operator_may_have_the_longest_length() -> None:
    """After an operator a chain starts from no steps: ``MAX_CHAIN`` of them are accepted."""
    assert None is check_limits("x + a" + ".b" * MAX_CHAIN)


def test_a_product_binds_tighter_than_a_sum() -> None:
    """``[1] * [2] + [3]`` is a sum of two one-element values: the next comprehension walks
    two elements."""
    assert CostEstimate(14, False) == estimate_cost("([1] * [2] + [3]).map(x, x)")


def test_a_name_of_the_run_s_data_is_iterated_data() -> None:
    """A comprehension over a bare name walks the run's data, of the assumed size."""
    assert CostEstimate(301, True) == estimate_cost("items.all(x, x)")


def test_a_name_may_start_with_an_underscore() -> None:
    """``_a`` is a name like any other."""
    assert CostEstimate(1, False) == estimate_cost("_a")


@pytest.mark.parametrize("source", ["{}", "[]", "size()", "Name{}"])
def test_empty_brackets_cost_one_step(source: str) -> None:
    """An empty map, list, call or message costs one step."""
    assert CostEstimate(1, False) == estimate_cost(source)


@pytest.mark.parametrize("source", ["true ? 1 , 2", "a[1)", "[1, 2)", "{1, 2}", "size(1]"])
def test_a_wrong_separator_or_closing_bracket_has_no_estimate(source: str) -> None:
    """A conditional without ``:``, a map item without ``:`` or a bracket closed by another
    kind does not parse."""
    assert None is estimate_cost(source)


def test_the_cost_of_a_map_literal_s_comprehension_is_a_whole_number() -> None:
    """A map literal's size counts its keys in whole numbers: the cost is an ``int`` (messages
    print it with thousands separators)."""
    estimate = estimate_cost("{1: 2, 3: 4}.all(k, k)")
    assert estimate is not None
    assert (11, int) == (estimate.cost, type(estimate.cost))


# --- characters CEL cannot read ---------------------------------------------------------------


def test_as_many_unreadable_characters_as_the_limit_are_left_to_the_parser() -> None:
    """``MAX_UNREADABLE`` characters the lexer cannot read pass the limits: the binding
    says the first one (``cel_syntax`` in plain words)."""
    assert None is check_limits("a ‘b‘ && é" + " #" * (MAX_UNREADABLE - 3))


def test_one_unreadable_character_more_is_refused_with_the_first() -> None:
    """Past the limit the expression never reaches the binding, whose error text quotes the
    whole line again at each such character: its size grew by the square of the line's
    length."""
    expected = (
        f"has more than {MAX_UNREADABLE} characters CEL cannot read outside strings (the "
        "first, '‘', at column 7)"
    )
    assert expected == _refusal("'#' + " + "‘" * 8000)
    assert _refusal("1 +\n  #" * 40).endswith("(the first, '#', at line 2, column 3)")


def test_unreadable_characters_in_strings_and_comments_are_not_counted() -> None:
    """Any character may be written in a string or a comment."""
    many = "‘é#;" * 500
    assert None is check_limits(f"'{many}' == r\"{many}\" // {many}")
