// What client/backup's writer and reader share about libarchive: its errors
// as Status, and the thread's LC_CTYPE set to C.UTF-8 while it runs (its
// name conversions need a UTF-8 locale; see archive.h). Not thread-safe
// beyond the calling thread.
#pragma once

#include <locale.h>

#include <string>

#include "protocol/status.h"

struct archive;

namespace kmsd::backup {

Status LibarchiveError(struct archive* archive, const std::string& what);

class Utf8Locale {
 public:
  Utf8Locale();
  ~Utf8Locale();
  Utf8Locale(const Utf8Locale&) = delete;
  Utf8Locale& operator=(const Utf8Locale&) = delete;

 private:
  locale_t utf8_ = nullptr;
  locale_t previous_ = nullptr;
};

}  // namespace kmsd::backup
