#include "output_paths.hpp"

#include <unistd.h>

#include <filesystem>
#include <string>
#include <system_error>

namespace sparsefill::cli {
namespace {

// "" when `folder` exists and is writable, else why not.
std::string writable_folder(const std::filesystem::path& folder) {
  std::error_code ec;
  if (!std::filesystem::is_directory(folder, ec)) return "folder '" + folder.string() + "' does not exist";
  if (::access(folder.c_str(), W_OK) != 0) return "folder '" + folder.string() + "' is not writable";
  return "";
}

}  // namespace

CLI::Validator output_file() {
  return CLI::Validator(
      [](std::string& path) {
        const std::filesystem::path folder = std::filesystem::path(path).parent_path();
        return writable_folder(folder.empty() ? std::filesystem::path(".") : folder);
      },
      "FILE", "output file");
}

CLI::Validator output_folder() {
  return CLI::Validator([](std::string& path) { return writable_folder(path); }, "DIR", "output folder");
}

}  // namespace sparsefill::cli
