// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/*
 * Test double of the Etherisc depeg product, for the backend processor's tests.
 *
 * It mirrors the external behaviour the processor relies on:
 *   - applyForPolicyWithBundleAndSignature(...) with the same argument list and
 *     the same revert strings as the production product / message helper,
 *   - EIP-712 "Policy" signatures checked by a separate DepegMessageHelper
 *     contract (the EIP-712 verifyingContract is the helper, not the product),
 *   - the LogDepegApplicationCreated event.
 * Everything else (GIF instance, riskpool, token transfers) is left out.
 */

/// @notice EIP-712 signature checks for gasless policy applications.
/// Only the product that deployed the helper may call it.
contract DepegMessageHelper {

    string public constant EIP712_DOMAIN_NAME = "EtheriscDepeg";
    string public constant EIP712_DOMAIN_VERSION = "1";

    bytes32 public constant EIP712_DOMAIN_TYPEHASH = keccak256(
        "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");

    bytes32 public constant POLICY_TYPEHASH = keccak256(
        "Policy(address wallet,uint256 protectedBalance,uint256 duration,uint256 bundleId,bytes32 signatureId)");

    // secp256k1n / 2 (EIP-2: reject high-s signatures)
    uint256 private constant SECP256K1_HALF_N =
        0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    address public immutable product;

    mapping(bytes32 => bool) public signatureIsUsed;

    constructor() {
        product = msg.sender;
    }

    function checkAndRegisterSignature(
        address policyHolder,
        address protectedWallet,
        uint256 protectedBalance,
        uint256 duration,
        uint256 bundleId,
        bytes32 signatureId,
        bytes calldata signature
    )
        external
    {
        require(msg.sender == product, "ERROR:DMH-003:CALLER_NOT_PRODUCT");

        bytes32 signatureHash = keccak256(abi.encode(signature));
        require(!signatureIsUsed[signatureHash], "ERROR:DMH-001:SIGNATURE_USED");

        bytes32 digest = getPolicyDigest(
            protectedWallet, protectedBalance, duration, bundleId, signatureId);
        address signer = _recover(digest, signature);
        require(signer != address(0) && signer == policyHolder, "ERROR:DMH-002:SIGNATURE_INVALID");

        signatureIsUsed[signatureHash] = true;
    }

    function getDomainSeparator() public view returns (bytes32) {
        return keccak256(abi.encode(
            EIP712_DOMAIN_TYPEHASH,
            keccak256(bytes(EIP712_DOMAIN_NAME)),
            keccak256(bytes(EIP712_DOMAIN_VERSION)),
            block.chainid,
            address(this)));
    }

    /// @notice EIP-712 digest a policy holder has to sign.
    function getPolicyDigest(
        address protectedWallet,
        uint256 protectedBalance,
        uint256 duration,
        uint256 bundleId,
        bytes32 signatureId
    )
        public
        view
        returns (bytes32)
    {
        bytes32 structHash = keccak256(abi.encode(
            POLICY_TYPEHASH,
            protectedWallet,
            protectedBalance,
            duration,
            bundleId,
            signatureId));

        return keccak256(abi.encodePacked("\x19\x01", getDomainSeparator(), structHash));
    }

    /// @dev returns address(0) for any malformed signature
    function _recover(bytes32 digest, bytes calldata signature) internal pure returns (address) {
        if (signature.length != 65) {
            return address(0);
        }

        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);

        if (v < 27) {
            v += 27;
        }

        if (v != 27 && v != 28) {
            return address(0);
        }

        if (uint256(s) > SECP256K1_HALF_N) {
            return address(0);
        }

        return ecrecover(digest, v, r, s);
    }
}


/// @notice Minimal stand-in for the production depeg product.
contract DepegProductDouble {

    event LogDepegApplicationCreated(
        bytes32 processId,
        address policyHolder,
        address protectedWallet,
        uint256 protectedBalance,
        uint256 sumInsuredAmount,
        uint256 premiumAmount);

    address public immutable owner;
    DepegMessageHelper private immutable _messageHelper;

    bool public active;
    uint256 public applicationCount;
    mapping(uint256 => bool) public isBundleOpen;

    modifier onlyOwner() {
        require(msg.sender == owner, "ERROR:DP-001:NOT_OWNER");
        _;
    }

    constructor() {
        owner = msg.sender;
        _messageHelper = new DepegMessageHelper();

        active = true;
        isBundleOpen[1] = true;
        isBundleOpen[2] = true;
        isBundleOpen[3] = true;
    }

    function getMessageHelperAddress() external view returns (address) {
        return address(_messageHelper);
    }

    function setActive(bool isActive) external onlyOwner {
        active = isActive;
    }

    function openBundle(uint256 bundleId) external onlyOwner {
        isBundleOpen[bundleId] = true;
    }

    function closeBundle(uint256 bundleId) external onlyOwner {
        isBundleOpen[bundleId] = false;
    }

    function applyForPolicyWithBundleAndSignature(
        address policyHolder,
        address protectedWallet,
        uint256 protectedBalance,
        uint256 duration,
        uint256 bundleId,
        bytes32 signatureId,
        bytes calldata signature
    )
        external
        returns (bytes32 processId)
    {
        require(active, "ERROR:DP-010:PRODUCT_NOT_ACTIVE");
        require(protectedWallet != address(0), "ERROR:DP-011:WALLET_ADDRESS_ZERO");
        require(bundleId > 0, "ERROR:DP-012:BUNDLE_ID_ZERO");
        require(isBundleOpen[bundleId], "ERROR:DP-013:BUNDLE_NOT_ACTIVE");
        require(protectedBalance > 0, "ERROR:DP-014:BALANCE_ZERO");

        // high-level call: the helper's Error(string) reverts bubble up unchanged
        _messageHelper.checkAndRegisterSignature(
            policyHolder,
            protectedWallet,
            protectedBalance,
            duration,
            bundleId,
            signatureId,
            signature);

        processId = keccak256(abi.encode(policyHolder, signatureId, applicationCount));
        applicationCount += 1;

        _emitApplicationCreated(processId, policyHolder, protectedWallet, protectedBalance, duration);
    }

    function _emitApplicationCreated(
        bytes32 processId,
        address policyHolder,
        address protectedWallet,
        uint256 protectedBalance,
        uint256 duration
    )
        internal
    {
        uint256 premiumAmount = protectedBalance * duration / 365 days / 100;

        emit LogDepegApplicationCreated(
            processId,
            policyHolder,
            protectedWallet,
            protectedBalance,
            protectedBalance,
            premiumAmount);
    }
}
