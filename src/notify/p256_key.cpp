#include "notify/p256_key.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/param_build.h>

#include <vector>

namespace pa::notify {
namespace {

template <class T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const { F(p); }
};
using Bignum = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;
using Group = std::unique_ptr<EC_GROUP, Deleter<EC_GROUP, EC_GROUP_free>>;
using Point = std::unique_ptr<EC_POINT, Deleter<EC_POINT, EC_POINT_free>>;
using PkeyCtx = std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX, EVP_PKEY_CTX_free>>;
using MdCtx = std::unique_ptr<EVP_MD_CTX, Deleter<EVP_MD_CTX, EVP_MD_CTX_free>>;
using ParamBld = std::unique_ptr<OSSL_PARAM_BLD, Deleter<OSSL_PARAM_BLD, OSSL_PARAM_BLD_free>>;
using Params = std::unique_ptr<OSSL_PARAM, Deleter<OSSL_PARAM, OSSL_PARAM_free>>;
using EcdsaSig = std::unique_ptr<ECDSA_SIG, Deleter<ECDSA_SIG, ECDSA_SIG_free>>;

constexpr const char* kCurve = "prime256v1";

const unsigned char* bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// An EVP_PKEY from a public point and, when given, a private scalar.
EVP_PKEY* make_key(std::string_view point, const BIGNUM* scalar) {
  ParamBld bld(OSSL_PARAM_BLD_new());
  if (!bld ||
      OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, kCurve, 0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                       point.size()) != 1 ||
      (scalar != nullptr &&
       OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_PRIV_KEY, scalar) != 1))
    return nullptr;
  Params params(OSSL_PARAM_BLD_to_param(bld.get()));
  PkeyCtx ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  EVP_PKEY* key = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &key, scalar != nullptr ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY,
                        params.get()) != 1)
    return nullptr;
  return key;
}

std::string public_point_of(EVP_PKEY* key) {
  std::string out(P256Key::kPublicBytes, '\0');
  std::size_t len = 0;
  if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY,
                                      reinterpret_cast<unsigned char*>(out.data()), out.size(),
                                      &len) != 1 ||
      len != P256Key::kPublicBytes)
    return {};
  return out;
}

}  // namespace

P256Key::P256Key(EVP_PKEY* key, bool has_private)
    : key_(key, Free{}), public_(public_point_of(key)), has_private_(has_private) {}

std::optional<P256Key> P256Key::generate() {
  EVP_PKEY* key = EVP_EC_gen(kCurve);
  if (key == nullptr) return std::nullopt;
  P256Key k(key, true);
  if (k.public_.empty()) return std::nullopt;
  return k;
}

std::optional<P256Key> P256Key::from_private(std::string_view scalar) {
  if (scalar.size() != kPrivateBytes) return std::nullopt;
  Bignum d(BN_bin2bn(bytes(scalar), static_cast<int>(scalar.size()), nullptr));
  Group group(EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1));
  if (!d || !group || BN_is_zero(d.get()) || BN_cmp(d.get(), EC_GROUP_get0_order(group.get())) >= 0)
    return std::nullopt;
  Point pub(EC_POINT_new(group.get()));
  std::string point(kPublicBytes, '\0');
  if (!pub || EC_POINT_mul(group.get(), pub.get(), d.get(), nullptr, nullptr, nullptr) != 1 ||
      EC_POINT_point2oct(group.get(), pub.get(), POINT_CONVERSION_UNCOMPRESSED,
                         reinterpret_cast<unsigned char*>(point.data()), point.size(),
                         nullptr) != kPublicBytes)
    return std::nullopt;
  EVP_PKEY* key = make_key(point, d.get());
  if (key == nullptr) return std::nullopt;
  return P256Key(key, true);
}

std::optional<P256Key> P256Key::from_public(std::string_view point) {
  if (point.size() != kPublicBytes || point[0] != 0x04) return std::nullopt;
  // EVP_PKEY_fromdata does not check that the point is on the curve; decoding it does.
  Group group(EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1));
  Point p(group ? EC_POINT_new(group.get()) : nullptr);
  if (!p || EC_POINT_oct2point(group.get(), p.get(), bytes(point), point.size(), nullptr) != 1 ||
      EC_POINT_is_on_curve(group.get(), p.get(), nullptr) != 1)
    return std::nullopt;
  EVP_PKEY* key = make_key(point, nullptr);
  if (key == nullptr) return std::nullopt;
  return P256Key(key, false);
}

std::string P256Key::private_scalar() const {
  if (!has_private_) return {};
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(key_.get(), OSSL_PKEY_PARAM_PRIV_KEY, &raw) != 1) return {};
  Bignum d(raw);
  std::string out(kPrivateBytes, '\0');
  if (BN_bn2binpad(d.get(), reinterpret_cast<unsigned char*>(out.data()),
                   static_cast<int>(out.size())) != static_cast<int>(kPrivateBytes))
    return {};
  return out;
}

std::optional<std::string> P256Key::derive(const P256Key& peer) const {
  PkeyCtx ctx(EVP_PKEY_CTX_new(key_.get(), nullptr));
  std::size_t len = 0;
  if (!has_private_ || !ctx || EVP_PKEY_derive_init(ctx.get()) != 1 ||
      EVP_PKEY_derive_set_peer(ctx.get(), peer.key_.get()) != 1 ||
      EVP_PKEY_derive(ctx.get(), nullptr, &len) != 1)
    return std::nullopt;
  std::string secret(len, '\0');
  if (EVP_PKEY_derive(ctx.get(), reinterpret_cast<unsigned char*>(secret.data()), &len) != 1)
    return std::nullopt;
  secret.resize(len);
  return secret;
}

std::optional<std::string> P256Key::sign_es256(std::string_view data) const {
  MdCtx ctx(EVP_MD_CTX_new());
  std::size_t len = 0;
  if (!has_private_ || !ctx ||
      EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key_.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, bytes(data), data.size()) != 1)
    return std::nullopt;
  std::vector<unsigned char> der(len);
  if (EVP_DigestSign(ctx.get(), der.data(), &len, bytes(data), data.size()) != 1)
    return std::nullopt;
  // DER ECDSA-Sig-Value -> JWS's fixed-size r || s.
  const unsigned char* p = der.data();
  EcdsaSig sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(len)));
  if (!sig) return std::nullopt;
  std::string out(64, '\0');
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  if (BN_bn2binpad(ECDSA_SIG_get0_r(sig.get()), o, 32) != 32 ||
      BN_bn2binpad(ECDSA_SIG_get0_s(sig.get()), o + 32, 32) != 32)
    return std::nullopt;
  return out;
}

bool P256Key::verify_es256(std::string_view data, std::string_view signature) const {
  if (signature.size() != 64) return false;
  EcdsaSig sig(ECDSA_SIG_new());
  BIGNUM* r = BN_bin2bn(bytes(signature), 32, nullptr);
  BIGNUM* s = BN_bin2bn(bytes(signature) + 32, 32, nullptr);
  if (!sig || r == nullptr || s == nullptr || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
    BN_free(r);
    BN_free(s);
    return false;
  }
  unsigned char* der = nullptr;
  const int der_len = i2d_ECDSA_SIG(sig.get(), &der);
  if (der_len <= 0) return false;
  std::unique_ptr<unsigned char, void (*)(unsigned char*)> der_owner(
      der, [](unsigned char* d) { OPENSSL_free(d); });
  MdCtx ctx(EVP_MD_CTX_new());
  return ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key_.get()) == 1 &&
         EVP_DigestVerify(ctx.get(), der, static_cast<std::size_t>(der_len), bytes(data),
                          data.size()) == 1;
}

}  // namespace pa::notify
