#include "support/hook_double.hpp"

namespace pa::test {

HookDouble::HookDouble(bool tls)
    : http_(tls, [this](const HttpRequest& request) {
        requests_.add(request);
        HttpAnswer answer;
        answer.status = status_.load();
        return answer;
      }) {}

}  // namespace pa::test
