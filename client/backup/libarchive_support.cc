#include "client/backup/libarchive_support.h"

#include <archive.h>

namespace kmsd::backup {

Status LibarchiveError(struct archive* archive, const std::string& what) {
  const char* text = archive == nullptr ? nullptr : archive_error_string(archive);
  return Status(Code::kInternal, what + ": " + (text != nullptr ? text : "libarchive failed"));
}

Utf8Locale::Utf8Locale() : utf8_(newlocale(LC_CTYPE_MASK, "C.UTF-8", nullptr)) {
  if (utf8_ != nullptr) previous_ = uselocale(utf8_);
}

Utf8Locale::~Utf8Locale() {
  if (utf8_ == nullptr) return;
  uselocale(previous_);
  freelocale(utf8_);
}

}  // namespace kmsd::backup
