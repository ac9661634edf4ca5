"""Writes examples/data/products.csv: a small product table for `keras-mtl train examples/products.yaml`.

Simulated (seeded), with the column kinds real tables have: numbers, a few
categories, a seller id with thousands of values, a free-text title, a
list of tags, and three targets (a 0/1 return flag with missing values, a
4-way category, a price in dollars).

    .venv/bin/python examples/make_products.py [--rows 4000] [--out examples/data/products.csv]
"""

import argparse

import numpy as np
import pandas as pd

WORDS = {
    "kitchen": ["pan", "knife", "steel", "cast", "iron", "bowl", "nonstick", "chef"],
    "garden": ["hose", "shovel", "seed", "planter", "outdoor", "rake", "grass", "solar"],
    "office": ["desk", "chair", "lamp", "paper", "ergonomic", "pen", "drawer", "ink"],
    "toys": ["puzzle", "doll", "blocks", "kids", "wooden", "robot", "plush", "game"],
}
TAGS = ["eco", "sale", "new", "bestseller", "premium", "refurbished", "bundle", "gift"]


def products(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    category = rng.integers(0, 4, rows)
    names = list(WORDS)
    brand = rng.choice(["acme", "globex", "initech", "umbrella", "hooli", "stark"], rows)
    weight = rng.gamma(2.0, 1.5, rows).round(2)
    rating = np.clip(rng.normal(4.0, 0.6, rows), 1, 5).round(1)
    titles = [
        " ".join(rng.choice(WORDS[names[c]], rng.integers(3, 7))) + f" {b}" for c, b in zip(category, brand)
    ]
    tags = [" ".join(rng.choice(TAGS, rng.integers(0, 4), replace=False)) for _ in range(rows)]
    premium = np.array(["premium" in t for t in tags])
    price = 8 + 12 * category + 6 * weight + 25 * premium + rng.normal(0, 4, rows)
    returned = (rng.random(rows) < 1 / (1 + np.exp(-(2.5 - rating) * 2))).astype(float)
    returned[rng.random(rows) < 0.25] = np.nan  # not yet known
    return pd.DataFrame({
        "weight_kg": weight,
        "rating": rating,
        "brand": brand,
        "seller_id": rng.integers(0, 5000, rows),
        "title": titles,
        "tags": tags,
        "returned": returned,
        "category": category,
        "price": price.round(2),
    })


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=4000)
    p.add_argument("--out", default="examples/data/products.csv")
    args = p.parse_args()
    products(args.rows).to_csv(args.out, index=False)
    print(f"Wrote {args.rows} rows to {args.out}")
