#include "daemon/audit/files.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "protocol/audit_entry.h"

namespace kmsd::audit {

Result<std::vector<LogFile>> ListLogFiles(const std::string& dir) {
  DIR* handle = ::opendir(dir.c_str());
  if (handle == nullptr) {
    const int error = errno;
    return Error(ErrnoStatus(error == ENOENT ? Code::kNotFound : Code::kInternal,
                             "cannot read the audit directory " + dir, error));
  }
  std::vector<LogFile> files;
  while (const dirent* entry = ::readdir(handle)) {
    if (auto seq = FirstSeqOfFileName(entry->d_name)) files.push_back({*seq, entry->d_name});
  }
  ::closedir(handle);
  std::sort(files.begin(), files.end(),
            [](const LogFile& a, const LogFile& b) { return a.first_seq < b.first_seq; });
  return files;
}

Result<std::string> ReadLogFile(const std::string& dir, const std::string& name,
                                std::optional<uint64_t> limit) {
  const std::string path = dir + "/" + name;
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return Error(ErrnoStatus(Code::kInternal, "cannot open " + path, errno));
  std::string content;
  struct stat st;
  if (::fstat(fd, &st) == 0) content.reserve(std::min<uint64_t>(st.st_size, limit.value_or(~0ull)));
  char buffer[1 << 16];
  while (!limit || content.size() < *limit) {
    const size_t want =
        limit ? std::min<uint64_t>(sizeof buffer, *limit - content.size()) : sizeof buffer;
    const ssize_t got = ::read(fd, buffer, want);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      const int error = errno;
      ::close(fd);
      return Error(ErrnoStatus(Code::kInternal, "cannot read " + path, error));
    }
    if (got == 0) break;
    content.append(buffer, static_cast<size_t>(got));
  }
  ::close(fd);
  return content;
}

Lines SplitLines(std::string_view content) {
  Lines out;
  size_t begin = 0;
  while (begin < content.size()) {
    const size_t end = content.find('\n', begin);
    if (end == std::string_view::npos) {
      out.torn_bytes = content.size() - begin;
      break;
    }
    out.lines.push_back(content.substr(begin, end - begin));
    begin = end + 1;
  }
  return out;
}

}  // namespace kmsd::audit
