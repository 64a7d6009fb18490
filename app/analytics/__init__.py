"""Payment analytics (issue 11): the payment success rate, the fund-flow time and the
funnel, computed in the database per Beijing day, channel and course.

``measures`` holds the definitions as pure functions (the known-answer tests check them);
``queries`` computes the same numbers in SQL over a date range; ``chart`` draws them.
"""
