// The test internet is the bench's too (its network section measures against it): one implementation.
export { startTestInternet, type TestInternet } from "../../packages/bench/src/net/test-internet.js";
