#include "os/paths.h"

#include <filesystem>

namespace kmsd {

std::string DirectoryOf(const std::string& path) {
  const std::string parent = std::filesystem::path(path).parent_path().string();
  return parent.empty() ? "." : parent;
}

}  // namespace kmsd
