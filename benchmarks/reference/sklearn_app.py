"""Reference API (c): the brief's model, a scikit-learn RandomForestRegressor, per request.

``RandomForestRegressor(n_estimators=100, random_state=42)`` trained on a sample of the real
features, unpickled at start-up and called with ``model.predict`` for each request, served by
FastAPI the way the brief's example solution does (a plain ``def`` endpoint, run in FastAPI's
thread pool). Query parameters are floats; the answer is a JSON float.

Run: ``REFERENCE_RF=rf.pkl uvicorn sklearn_app:app --app-dir benchmarks/reference``.
"""

import os
import pickle

import numpy as np
from fastapi import FastAPI

with open(os.environ["REFERENCE_RF"], "rb") as _f:
    model = pickle.load(_f)

app = FastAPI(title="reference: FastAPI + scikit-learn random forest")


@app.get("/predict")
def predict(vol_moving_avg: float, adj_close_rolling_med: float) -> float:
    return float(model.predict(np.array([[vol_moving_avg, adj_close_rolling_med]]))[0])


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}
