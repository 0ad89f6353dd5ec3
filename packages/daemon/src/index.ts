export { startDaemon, type RunningDaemon } from "./main.js";
export { loadConfig, apiKeyPath, defaultAgentPath, type DaemonConfig } from "./config/config.js";
export { runDoctor, type DoctorCheck } from "./doctor/doctor.js";
export { TemplateStore } from "./templates/template-store.js";
export { builtinRecipes } from "./templates/template-recipes.js";
export { DAEMON_VERSION } from "./version.js";
