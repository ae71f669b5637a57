"""The engine builder: passes over the IR, precision, lowering to a launch list, memory planning."""
