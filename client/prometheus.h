// kmsd's `status` in the Prometheus text exposition format (version 0.0.4),
// as node_exporter's textfile collector reads it (docs/OPERATIONS.md lists
// the metrics). Names follow Prometheus's conventions: a `kmsd_` prefix,
// `_total` counters, histograms in seconds with cumulative `le` buckets.
// Label values are escaped (\\, \", \n). Pure.
#pragma once

#include <string>

#include "protocol/operation_types.h"

namespace kmsd {

std::string PrometheusText(const ops::StatusReply& status);

}  // namespace kmsd
