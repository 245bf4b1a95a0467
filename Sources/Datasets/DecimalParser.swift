/// What a cell read as a number turned out to be.
enum NumberReading<Value: BinaryFloatingPoint>: Equatable {
    case number(Value)
    /// `nan`, `inf`, `-Infinity` … (any case).
    case notFinite
    /// A well-formed decimal too large for the type (`1e39` as Float).
    case outOfRange
    case notANumber
}

/// Reads decimal numbers (`-12`, `3.25`, `.5`, `1e-3`) straight from UTF-8 bytes.
///
/// Most cells of a real CSV are short decimals; those take Clinger's fast path: when the digits
/// fit the significand exactly and the power of ten is exact too, one IEEE multiply or divide is
/// correctly rounded. Everything else falls back to the standard library's correctly rounded,
/// locale-independent `Float(String)`, after the grammar here has checked the cell, so hex floats
/// and stray spellings never slip through.
enum DecimalParser {
    static func float(_ bytes: UnsafeBufferPointer<UInt8>) -> NumberReading<Float> {
        switch scan(bytes) {
        case .notFinite: return .notFinite
        case .notANumber: return .notANumber
        case .decimal(let decimal):
            if let exact = decimal.exactValue(as: Float.self, maxSignificand: 1 << 24, maxPowerOfTen: 10) {
                return .number(exact)
            }
            guard let value = Float(String(decoding: bytes, as: UTF8.self)) else { return .notANumber }
            return value.isFinite ? .number(value) : .outOfRange
        }
    }

    static func double(_ bytes: UnsafeBufferPointer<UInt8>) -> NumberReading<Double> {
        switch scan(bytes) {
        case .notFinite: return .notFinite
        case .notANumber: return .notANumber
        case .decimal(let decimal):
            if let exact = decimal.exactValue(as: Double.self, maxSignificand: 1 << 53, maxPowerOfTen: 22) {
                return .number(exact)
            }
            guard let value = Double(String(decoding: bytes, as: UTF8.self)) else { return .notANumber }
            return value.isFinite ? .number(value) : .outOfRange
        }
    }

    /// A decimal as `±significand × 10^exponent`, with up to 19 significant digits kept.
    struct Decimal {
        var isNegative = false
        var significand: UInt64 = 0
        var exponent = 0
        /// More than 19 significant digits: `significand` is only a prefix.
        var isTruncated = false

        /// The value when both the significand and the power of ten are exact in `T`.
        @inline(__always)
        func exactValue<T: BinaryFloatingPoint>(as: T.Type, maxSignificand: UInt64, maxPowerOfTen: Int) -> T? {
            if significand == 0 { return isNegative ? -T.zero : T.zero }
            guard !isTruncated, significand <= maxSignificand, abs(exponent) <= maxPowerOfTen else { return nil }
            var value = T(significand)
            if exponent > 0 { value *= T(powersOfTen[exponent]) }
            if exponent < 0 { value /= T(powersOfTen[-exponent]) }
            return isNegative ? -value : value
        }
    }

    /// 10^0 … 10^22, all exact in Double (and up to 10^10 exact in Float).
    private static let powersOfTen: [Double] = (0...22).map { exponent in
        (0..<exponent).reduce(1.0) { product, _ in product * 10 }
    }

    enum Scan { case decimal(Decimal), notFinite, notANumber }

    /// Checks the grammar `[+-]? (digits [. digits?] | . digits) ([eE] [+-]? digits)?` and
    /// collects the significant digits.
    @inline(__always)
    static func scan(_ bytes: UnsafeBufferPointer<UInt8>) -> Scan {
        let count = bytes.count
        var index = 0
        var decimal = Decimal()
        var digitCount = 0
        var sawDigit = false

        @inline(__always) func digit(at index: Int) -> UInt64? {
            let value = bytes[index] &- UInt8(ascii: "0")
            return value < 10 ? UInt64(value) : nil
        }
        @inline(__always) func accumulate(_ value: UInt64, isFraction: Bool) {
            sawDigit = true
            if decimal.significand == 0 && value == 0 {
                // A leading zero adds no significant digit; in the fraction it still shifts the point.
                if isFraction { decimal.exponent -= 1 }
            } else if digitCount < 19 {
                decimal.significand = decimal.significand &* 10 &+ value
                digitCount += 1
                if isFraction { decimal.exponent -= 1 }
            } else {
                decimal.isTruncated = true
                if !isFraction { decimal.exponent += 1 }
            }
        }

        guard count > 0 else { return .notANumber }
        if bytes[0] == UInt8(ascii: "-") || bytes[0] == UInt8(ascii: "+") {
            decimal.isNegative = bytes[0] == UInt8(ascii: "-")
            index = 1
        }
        while index < count, let value = digit(at: index) {
            accumulate(value, isFraction: false)
            index += 1
        }
        if index < count && bytes[index] == UInt8(ascii: ".") {
            index += 1
            while index < count, let value = digit(at: index) {
                accumulate(value, isFraction: true)
                index += 1
            }
        }
        guard sawDigit else { return isNonFiniteSpelling(bytes) ? .notFinite : .notANumber }

        if index < count && (bytes[index] | 0x20) == UInt8(ascii: "e") {
            index += 1
            var exponentIsNegative = false
            if index < count && (bytes[index] == UInt8(ascii: "-") || bytes[index] == UInt8(ascii: "+")) {
                exponentIsNegative = bytes[index] == UInt8(ascii: "-")
                index += 1
            }
            var exponent = 0
            var sawExponentDigit = false
            while index < count, let value = digit(at: index) {
                exponent = min(exponent * 10 + Int(value), 100_000)  // beyond any float's range either way
                sawExponentDigit = true
                index += 1
            }
            guard sawExponentDigit else { return .notANumber }
            decimal.exponent += exponentIsNegative ? -exponent : exponent
        }
        guard index == count else { return .notANumber }

        // `1.500` reaches the fast path as 15e-1.
        while decimal.exponent < 0 && decimal.significand != 0 && !decimal.isTruncated && decimal.significand % 10 == 0 {
            decimal.significand /= 10
            decimal.exponent += 1
        }
        return .decimal(decimal)
    }

    /// `nan`, `inf` or `infinity` in any case, with an optional sign.
    static func isNonFiniteSpelling(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var start = 0
        if let first = bytes.first, first == UInt8(ascii: "-") || first == UInt8(ascii: "+") { start = 1 }
        guard bytes.count - start <= 8 else { return false }
        var lowercased = ""
        for byte in bytes[start...] { lowercased.unicodeScalars.append(Unicode.Scalar(byte | 0x20)) }
        return lowercased == "nan" || lowercased == "inf" || lowercased == "infinity"
    }
}
