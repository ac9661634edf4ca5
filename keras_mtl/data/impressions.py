"""Simulated ad impressions -> clicks -> conversions, with known propensities and selection bias.

Recommendation objectives (conditional tasks, ESMM) need data where a
conversion is only seen after a click, and an evaluation over every
impression, which no logged dataset can give: a conversion that would have
followed an impression nobody clicked is never observed. This generator
draws that counterfactual too. It is a simulation, documented as such, not
a stand-in for any real system's data.

The model, per impression of item i to user u at display position k:

    CTR logit = -2.2 + a_u . b_i + popularity_i - 0.25 (k - 1) + bias * clickbait_i
    CVR logit = -1.3 + c_u . b_i + quality_i - 0.6 log(price_i) - bias * clickbait_i

with user and item factors shared by the two (a_u and c_u correlated), so
what the clicks teach about users and items carries over to conversions.
`selection_bias` scales `clickbait`: items that draw clicks convert worse,
so clicked impressions are unlike the impressions a conversion model must
score.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# The ground truth `truth=True` adds: the propensities and the conversion drawn for every impression.
TRUTH = ("true_ctr", "true_cvr", "would_convert")


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def simulated_impressions(
    n: int = 100_000,
    *,
    num_users: int = 5_000,
    num_items: int = 1_000,
    selection_bias: float = 1.0,
    factors: int = 4,
    truth: bool = False,
    seed: int = 0,
) -> pd.DataFrame:
    """`n` simulated impressions: features, `click` (0/1) and `conversion` (0/1 where clicked, NaN otherwise).

    Features: `user_id` and `item_id` (strings, read as hashed ids by
    `keras_mtl.data.from_dataframe`), `position` (1-10), `price`,
    `category` (one of 12), `hour` (0-23). With `truth=True`, also
    `true_ctr`, `true_cvr` (the propensities) and `would_convert`: a
    conversion drawn for every impression, equal to `conversion` where
    there was a click. The same arguments give the same table; draw the
    train and test impressions of an experiment in one call (one world of
    users and items) and split them.

    Example:
    >>> df = simulated_impressions(1000, truth=True, seed=1)
    >>> sorted(df.columns)[:4], bool(df["conversion"].isna().eq(df["click"].eq(0)).all())
    (['category', 'click', 'conversion', 'hour'], True)
    >>> bool((df["would_convert"][df["click"] == 1] == df["conversion"][df["click"] == 1]).all())
    True
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"simulated_impressions: n must be a positive integer, got {n!r}.")
    if not selection_bias >= 0:
        raise ValueError(f"simulated_impressions: selection_bias must be >= 0, got {selection_bias!r}.")
    rng = np.random.default_rng(seed)
    scale = 1.0 / np.sqrt(factors)
    user_click = rng.normal(0, 1, (num_users, factors))
    # Conversion tastes: mostly the click tastes, partly their own.
    user_buy = 0.8 * user_click + 0.6 * rng.normal(0, 1, (num_users, factors))
    item = rng.normal(0, 1, (num_items, factors)) * scale
    popularity = rng.normal(0, 0.5, num_items)
    quality = rng.normal(0, 0.7, num_items)
    clickbait = rng.normal(0, 1, num_items)
    category = rng.integers(0, 12, num_items)
    base_price = np.exp(rng.normal(3, 0.8, num_items))

    users = rng.integers(0, num_users, n)
    items = rng.integers(0, num_items, n)
    position = rng.integers(1, 11, n)
    hour = rng.integers(0, 24, n)
    price = base_price[items] * np.exp(rng.normal(0, 0.1, n))
    ctr = _sigmoid(
        -2.2 + np.einsum("nf,nf->n", user_click[users], item[items]) + popularity[items]
        - 0.25 * (position - 1) + selection_bias * clickbait[items]
    )
    cvr = _sigmoid(
        -1.3 + np.einsum("nf,nf->n", user_buy[users], item[items]) + quality[items]
        - 0.6 * (np.log(price) - 3) - selection_bias * clickbait[items]
    )
    click = (rng.random(n) < ctr).astype("float64")
    would_convert = (rng.random(n) < cvr).astype("float64")
    frame = pd.DataFrame({
        "user_id": np.char.add("u", users.astype(str)).astype(object),
        "item_id": np.char.add("i", items.astype(str)).astype(object),
        "position": position.astype("float64"),
        "price": price.round(2),
        "category": np.char.add("c", category[items].astype(str)).astype(object),
        "hour": hour.astype("float64"),
        "click": click,
        "conversion": np.where(click == 1, would_convert, np.nan),
    })
    if truth:
        frame["true_ctr"], frame["true_cvr"], frame["would_convert"] = ctr, cvr, would_convert
    return frame
