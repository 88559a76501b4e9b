// libFuzzer target: one operation's typed request body (`args`), decoded as the
// daemon decodes it before the handler runs.
//
// Input: byte 0 picks the operation (modulo kOperationCount, in
// kOperationTable's order; the types come from protocol/all_operations.h, whose
// static_asserts tie them to the table), the rest is the msgpack of `args`.
// The target decodes it with Frame::Decode and Decode<Op::Request> (strict,
// as HandlerTable::Add does), then each item of a batch with DecodeItem (as
// the batch handlers do). A request that decodes is encoded (Encode, as the
// client does), decoded again and encoded once more: the two encodings must
// be the same bytes. Any crash, sanitizer report or broken invariant
// (__builtin_trap) is a finding; among them: every refusal is
// INVALID_ARGUMENT, and a decoded request survives the round trip.
//
// Seeds: corpus/operation/, one valid body per operation (tests/fuzz/make_seeds.cc).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <tuple>
#include <type_traits>

#include "protocol/all_operations.h"
#include "protocol/codec.h"
#include "protocol/message.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using namespace kmsd;

using kmsd::fuzz::Check;

void CheckRefusal(const Status& status) { Check(status.code() == Code::kInvalidArgument); }

// Decodes every item of each batch member of `request`; when all decode,
// keeps them in `items` (what Encode writes). False if one did not.
template <typename Request>
bool DecodeBatches(Request& request) {
  bool all = true;
  std::apply(
      [&](const auto&... field) {
        (
            [&](auto& member) {
              using M = std::remove_cvref_t<decltype(member)>;
              if constexpr (codec_internal::IsBatch<M>::value) {
                member.items.clear();
                for (size_t i = 0; i < member.raw.size(); ++i) {
                  auto item = DecodeItem(member, i);
                  if (!item) {
                    CheckRefusal(item.error());
                    all = false;
                  } else if (all) {
                    member.items.push_back(*item);
                  }
                }
                if (all) member.raw = {};
              }
            }(request.*field.member),
            ...);
      },
      Request::kFields);
  return all;
}

template <typename Op>
void DecodeAs(std::span<const uint8_t> body) {
  using Request = typename Op::Request;
  auto frame = Frame::Decode(body);
  if (!frame) return CheckRefusal(frame.error());
  auto fields = Fields::Of(frame->root(), "args");
  if (!fields) return CheckRefusal(fields.error());
  auto request = Decode<Request>(*fields);
  if (!request) return CheckRefusal(request.error());
  if (!DecodeBatches(*request)) return;

  // The round trip: encode, decode, encode; the same bytes twice.
  const WipingBuffer first = EncodeValue(Value(Encode(Request(*request))));
  auto again_frame = Frame::Decode(std::span<const uint8_t>(first.data(), first.size()));
  Check(again_frame.has_value());
  auto again_fields = Fields::Of(again_frame->root(), "args");
  Check(again_fields.has_value());
  auto again = Decode<Request>(*again_fields);
  Check(again.has_value());
  Check(DecodeBatches(*again));
  const WipingBuffer second = EncodeValue(Value(Encode(std::move(*again))));
  Check(first.size() == second.size() &&
        std::equal(first.data(), first.data() + first.size(), second.data()));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const OperationInfo& op = kOperationTable[data[0] % kOperationCount];
  const std::span<const uint8_t> body(data + 1, size - 1);
  VisitOperation(op.id, [&]<typename Op>() { DecodeAs<Op>(body); });
  return 0;
}
