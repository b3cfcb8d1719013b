"""Reference API (b): FastAPI + onnxruntime, shaped like the strongest public solution.

A HistGradientBoostingRegressor of ``Volume`` on the two features, converted with skl2onnx
and run with onnxruntime per request. Query parameters are typed ``int``, so fractional
inputs (``vol_moving_avg=12345.6``) are rejected with 422, and the answer is a JSON float.

Run: ``REFERENCE_ONNX=model.onnx uvicorn onnx_app:app --app-dir benchmarks/reference``.
"""

import os

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI

_options = ort.SessionOptions()
# One request is one row: a single intra-op thread avoids thread-pool hand-off and spinning
# threads competing with the event loop for the machine's two cores.
_options.intra_op_num_threads = 1
_options.inter_op_num_threads = 1
session = ort.InferenceSession(os.environ["REFERENCE_ONNX"], _options,
                               providers=["CPUExecutionProvider"])
INPUT = session.get_inputs()[0].name

app = FastAPI(title="reference: FastAPI + onnxruntime")


@app.get("/predict")
async def predict(vol_moving_avg: int, adj_close_rolling_med: int) -> float:
    row = np.array([[vol_moving_avg, adj_close_rolling_med]], dtype=np.float32)
    return float(session.run(None, {INPUT: row})[0][0, 0])


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}
