#include "tests/crash/crash_support.h"

#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace kmsd::testing {

bool Exited(pid_t pid) {
  if (pid <= 0) return true;
  siginfo_t info{};
  return waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
         info.si_pid == pid;
}

std::string LogTail(const std::string& path, size_t bytes) {
  std::ifstream in(path, std::ios::binary);
  in.seekg(0, std::ios::end);
  const auto size = static_cast<size_t>(std::max<std::streamoff>(in.tellg(), 0));
  in.seekg(static_cast<std::streamoff>(size > bytes ? size - bytes : 0));
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void KeepForPostMortem(const std::filesystem::path& from, const std::string& name, uint64_t seed) {
  namespace fs = std::filesystem;
  const char* tmpdir = std::getenv("TMPDIR");
  const fs::path to = fs::path(tmpdir != nullptr && *tmpdir != '\0' ? tmpdir : "/tmp") /
                      (name + "-" + std::to_string(seed));
  std::error_code ec;
  fs::remove_all(to, ec);
  for (auto it = fs::recursive_directory_iterator(from, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const fs::path target = to / fs::relative(it->path(), from);
    if (it->is_directory()) {
      fs::create_directories(target, ec);
    } else if (it->is_regular_file()) {
      fs::create_directories(target.parent_path(), ec);
      fs::copy_file(it->path(), target, ec);
    }
  }
  std::fprintf(stderr, "the dev dir and kmsd's log are copied to %s%s\n", to.c_str(),
               ec ? " (incomplete)" : "");
}

}  // namespace kmsd::testing
