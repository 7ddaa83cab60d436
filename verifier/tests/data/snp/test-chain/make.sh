#!/bin/sh
# Generates the TEST certificate chain the SEV-SNP tests sign with. Nothing here is AMD's:
# test-ark (RSA-2048, self-signed) -> test-ask (RSA-2048) -> test-vcek (P-384), all signed
# RSASSA-PSS SHA-384 salt 48 like AMD's, the VCEK carrying AMD's TCB and hwID extensions
# (bootloader 3, TEE 0, SNP 8, microcode 115, hwID 64 x 0x11). other-ark is a second root
# with the same name, for the "wrong ARK" test. Run with OpenSSL 3; outputs are committed.
set -eu
cd "$(dirname "$0")"
pss="-sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:48 -sigopt rsa_mgf1_md:sha384 -sha384"
subj="/OU=Engineering/C=US/L=Test/ST=CA/O=enclave-builder tests (not AMD)"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out ark.key 2>/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out other-ark.key 2>/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out ask.key 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out test-vcek.key 2>/dev/null
openssl req -x509 -new -key ark.key -subj "$subj/CN=ARK-Test" -days 36500 $pss -out test-ark.pem
openssl req -x509 -new -key other-ark.key -subj "$subj/CN=ARK-Test" -days 36500 $pss -out other-ark.pem
openssl req -new -key ask.key -subj "$subj/CN=SEV-Test" -out ask.csr
openssl x509 -req -in ask.csr -CA test-ark.pem -CAkey ark.key -set_serial 1 -days 36500 $pss -out test-ask.pem
hwid=$(printf '11%.0s' $(seq 64))
cat > vcek.ext <<EXT
1.3.6.1.4.1.3704.1.3.1 = ASN1:INTEGER:3
1.3.6.1.4.1.3704.1.3.2 = ASN1:INTEGER:0
1.3.6.1.4.1.3704.1.3.3 = ASN1:INTEGER:8
1.3.6.1.4.1.3704.1.3.8 = ASN1:INTEGER:115
1.3.6.1.4.1.3704.1.4 = ASN1:FORMAT:HEX,OCTETSTRING:$hwid
EXT
openssl req -new -key test-vcek.key -subj "$subj/CN=SEV-VCEK" -out vcek.csr
openssl x509 -req -in vcek.csr -CA test-ask.pem -CAkey ask.key -set_serial 2 -days 36500 $pss -extfile vcek.ext -outform der -out test-vcek.der
openssl pkcs8 -topk8 -nocrypt -in test-vcek.key -out test-vcek-key.pem
rm -f ark.key other-ark.key ask.key test-vcek.key ask.csr vcek.csr vcek.ext
