"""Run exported artifacts outside Python: a C++ runner built against the wheel's libtorch."""
