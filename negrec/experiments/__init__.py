"""The application: what the command line, the benchmarks and the tests run, built from the
library below it. Loading the data a configuration describes (:func:`load_data`), one training
run with its evaluation (:func:`train_and_evaluate`), measuring a trained model's
responsiveness (:func:`measure`) and the demo (:func:`run_demo`)."""

from negrec.experiments.data import load_data
from negrec.experiments.demo import DemoConfig, run_demo
from negrec.experiments.measure import Measurement, MeasureSizes, measure, world_of
from negrec.experiments.training import train_and_evaluate

__all__ = ["load_data", "DemoConfig", "run_demo", "Measurement", "MeasureSizes", "measure",
           "world_of", "train_and_evaluate"]
