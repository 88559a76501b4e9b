// UTF-8 as RFC 3629 defines it: no overlong forms, no surrogates, nothing
// above U+10FFFF. Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <string_view>

namespace kmsd {

// The length of the well-formed sequence starting at `at` (1 to 4), or 0.
size_t Utf8SequenceLength(std::string_view text, size_t at);

bool IsUtf8(std::string_view text);

}  // namespace kmsd
