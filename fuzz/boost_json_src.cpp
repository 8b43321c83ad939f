// Boost.JSON's implementation, compiled with the fuzz build's coverage instrumentation.
#include <boost/json/src.hpp>
