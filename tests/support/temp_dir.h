// TempDir: a fresh directory under $TMPDIR (or /tmp), removed with its
// contents when the object dies. Move-only.
#pragma once

#include <filesystem>
#include <string>

namespace kmsd::testing {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string operator/(std::string_view name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace kmsd::testing
