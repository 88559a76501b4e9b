// The compliance report as one self-contained HTML page (kmsctl audit report
// --html): inline style, an inline SVG chart of requests and denials per
// day, tables, no network. A short inline script adds each bar's figures
// as its tooltip and marks the page rendered (data-rendered="ok"); an error
// in it marks data-error instead (the headless-Chromium test reads both).
#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tools/kmsctl/output.h"

namespace kmsd::kmsctl {
namespace {

std::string Escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string Str(const Json& value) {
  return value.is_string() ? Escape(value.get<std::string>()) : Escape(value.dump());
}

std::string Chart(const Json& daily) {
  uint64_t peak = 1;
  for (const Json& day : daily) peak = std::max(peak, day["requests"].get<uint64_t>());
  const int width = 760, height = 220, left = 40, bottom = 30;
  const double slot = daily.empty() ? 1.0 : double(width - left) / double(daily.size());
  std::string svg = "<svg id=\"chart\" width=\"" + std::to_string(width) + "\" height=\"" +
                    std::to_string(height) +
                    "\" role=\"img\" aria-label=\"requests and denials per day\">";
  svg += "<line x1=\"" + std::to_string(left) + "\" y1=\"" + std::to_string(height - bottom) +
         "\" x2=\"" + std::to_string(width) + "\" y2=\"" + std::to_string(height - bottom) +
         "\" stroke=\"#888\"/>";
  svg += "<text x=\"0\" y=\"14\" font-size=\"11\">" + std::to_string(peak) + "</text>";
  for (size_t i = 0; i < daily.size(); ++i) {
    const Json& day = daily[i];
    const double x = left + slot * double(i);
    const double h =
        double(height - bottom - 20) * double(day["requests"].get<uint64_t>()) / double(peak);
    const double hd =
        double(height - bottom - 20) * double(day["denied"].get<uint64_t>()) / double(peak);
    const std::string label = Str(day["day"]);
    svg += "<rect class=\"bar\" data-day=\"" + label + "\" data-requests=\"" +
           std::to_string(day["requests"].get<uint64_t>()) + "\" data-denied=\"" +
           std::to_string(day["denied"].get<uint64_t>()) + "\" x=\"" + std::to_string(x + 1) +
           "\" y=\"" + std::to_string(height - bottom - h) + "\" width=\"" +
           std::to_string(std::max(1.0, slot * 0.6)) + "\" height=\"" + std::to_string(h) +
           "\" fill=\"#4a78c2\"/>";
    svg += "<rect x=\"" + std::to_string(x + 1 + slot * 0.3) + "\" y=\"" +
           std::to_string(height - bottom - hd) + "\" width=\"" +
           std::to_string(std::max(1.0, slot * 0.3)) + "\" height=\"" + std::to_string(hd) +
           "\" fill=\"#c0392b\"/>";
    if (i % 5 == 0) {
      svg += "<text x=\"" + std::to_string(x) + "\" y=\"" + std::to_string(height - 10) +
             "\" font-size=\"10\">" + label.substr(5) + "</text>";
    }
  }
  return svg + "</svg>";
}

std::string Table(const std::vector<std::string>& heads,
                  const std::vector<std::vector<std::string>>& rows, const std::string& empty) {
  if (rows.empty()) return "<p class=\"none\">" + empty + "</p>";
  std::string out = "<table><tr>";
  for (const std::string& head : heads) out += "<th>" + head + "</th>";
  out += "</tr>";
  for (const auto& row : rows) {
    out += "<tr>";
    for (const std::string& cell : row) out += "<td>" + cell + "</td>";
    out += "</tr>";
  }
  return out + "</table>";
}

}  // namespace

std::string ReportHtml(const Json& r) {
  const Json& log = r["log"];
  const bool verified = log["verified"].get<bool>();
  const Json& q = r["requests"];
  std::vector<std::vector<std::string>> principals, late, conflicts, grants;
  for (const Json& p : q["by_principal"]) {
    std::string ops;
    for (const auto& [op, n] : p["by_op"].items()) ops += Escape(op) + " " + n.dump() + "; ";
    principals.push_back({Str(p["principal"]), p["requests"].dump(), p["denied"].dump(), ops});
  }
  for (const Json& k : r["late_rotations"]) {
    late.push_back({Str(k["key"]), k["version"].dump(), Str(k["due"]), Str(k["rotated"])});
  }
  for (const Json& c : r["segregation"]) {
    conflicts.push_back({Str(c["principal"]), Str(c["roles"]), Str(c["keys"])});
  }
  for (const Json& g : r["grants"]) {
    grants.push_back({Str(g["id"]), Str(g["principal"]), Str(g["key"]), Str(g["operations"])});
  }
  const std::string title = "Audit report: tenant " + Str(r["tenant"]) + ", " + Str(r["period"]);
  std::string page =
      "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
      "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
      "<title>" +
      title +
      "</title><style>"
      "body{font-family:sans-serif;margin:2em;color:#222;max-width:60em}"
      "table{border-collapse:collapse;margin:.5em 0}"
      "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}"
      ".ok{background:#e6f4ea;color:#17692c;padding:.5em;font-weight:bold}"
      ".bad{background:#fdecea;color:#a12622;padding:.5em;font-weight:bold}"
      ".none{color:#666}</style></head>"
      "<body><script>window.onerror=function(m){document.body.dataset.error=m;};"
      "</script><h1>" +
      title + "</h1>";
  page += "<p>From " + Str(r["since"]) + " to " + Str(r["until"]) + ".</p>";
  page += verified
              ? "<p id=\"verification\" class=\"ok\">Log verified: " + log["entries"].dump() +
                    " entries of the tenant, " + log["seals"].dump() +
                    " seals checked by the token.</p>"
              : "<p id=\"verification\" class=\"bad\">Log DOES NOT VERIFY: " + Str(log["problem"]) +
                    "</p>";
  page += "<h2>Requests</h2><p>" + q["total"].dump() + " requests, " + q["denied"].dump() +
          " denied, " + q["lockouts"].dump() + " refused during a lockout.</p>" +
          Chart(q["daily"]) +
          "<p><span style=\"color:#4a78c2\">&#9632;</span> requests "
          "<span style=\"color:#c0392b\">&#9632;</span> denied</p>";
  page += Table({"principal", "requests", "denied", "by operation"}, principals,
                "No requests in the period.");
  page += "<h2>Keys rotated late</h2><p>Limit: " +
          (r["rotation_limit_days"].is_null() ? std::string("each key's own period")
                                              : r["rotation_limit_days"].dump() + " days") +
          ".</p>" +
          Table({"key", "version", "due", "rotated"}, late, "Every key was rotated in time.");
  page += "<h2>Segregation of duties</h2>" + Table({"principal", "roles", "may manage and use"},
                                                   conflicts,
                                                   "No principal may both manage and use a key.");
  page += "<h2>Grants in force</h2>" +
          Table({"id", "principal", "key", "operations"}, grants, "No grants in force.");
  page +=
      "<script>(function(){var bars=document.querySelectorAll('#chart .bar');"
      "for(var i=0;i<bars.length;i++){var b=bars[i];var t=document.createElementNS("
      "'http://www.w3.org/2000/svg','title');t.textContent=b.dataset.day+': '+"
      "b.dataset.requests+' requests, '+b.dataset.denied+' denied';b.appendChild(t);}"
      "document.body.dataset.rendered='ok';})();</script></body></html>\n";
  return page;
}

}  // namespace kmsd::kmsctl
