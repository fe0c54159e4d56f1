"""Numbered pages for a long list: 1 … 4 5 [6] 7 8 … 20 (the first, the last, and those near the current)."""

NEAR = 2  # pages shown on each side of the current one


def page_numbers(current, last, near=NEAR):
    """The page numbers to link, in order, with None where a run of pages is left out."""
    shown = sorted({1, last, *range(max(1, current - near), min(last, current + near) + 1)})
    numbers, previous = [], 0
    for number in shown:
        if number - previous == 2:
            numbers.append(previous + 1)  # a gap of one page: show the page, not an ellipsis
        elif number - previous > 2:
            numbers.append(None)
        numbers.append(number)
        previous = number
    return numbers
